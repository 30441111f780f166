"""The Helm chart, rendered and linted offline with Helm's own library (helm-python-sdk),
validated against the Kubernetes 1.33 schemas (kubernetes-validate), and held to the
controller's declared API access (src/controller/access.rs)."""

import pathlib
import re

import pytest
import yaml

helm = pytest.importorskip("helm_python", reason="helm-python-sdk not installed (tests/run installs it)")
kubernetes_validate = pytest.importorskip("kubernetes_validate")

ROOT = pathlib.Path(__file__).resolve().parents[2]
CHART = str(ROOT / "charts" / "dingsync")

ALL_ON = {
    "replicaCount": 3,
    "leaderElection": {"enabled": True},
    "serviceMonitor": {"enabled": True},
    "networkPolicy": {"enabled": True, "ingressFrom": [{"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}]},
    "ingress": {"enabled": True, "host": "login.example.com", "className": "nginx"},
    "watchNamespace": "identity",
}


def render(values):
    with helm.Chart.load(CHART) as chart:
        files = chart.render(values, name="dingsync", namespace="dingsync-system", is_install=True)
    docs = []
    for path, text in files.items():
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                docs.append(doc)
    return docs


@pytest.mark.parametrize("values", [{}, ALL_ON], ids=["defaults", "all-features"])
def test_lint_is_clean(values):
    report = helm.lint(CHART, values, strict=True, kube_version="v1.33.0")
    assert report["errors"] == [], report


@pytest.mark.parametrize("values", [{}, ALL_ON], ids=["defaults", "all-features"])
def test_rendered_objects_are_valid_kubernetes(values):
    docs = render(values)
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "Service", "ServiceAccount", "CustomResourceDefinition"} <= kinds
    for doc in docs:
        if doc["apiVersion"].startswith("monitoring.coreos.com"):
            continue  # no bundled schema for the Prometheus Operator's kinds
        kubernetes_validate.validate(doc, "1.33.0", strict=True)


def test_deployment_is_hardened_and_probed():
    dep = next(d for d in render({}) if d["kind"] == "Deployment")
    spec = dep["spec"]["template"]["spec"]
    c = spec["containers"][0]
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert c["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert dep["spec"]["strategy"]["type"] == "Recreate"
    env = {e["name"]: e for e in c["env"]}
    assert {"WATCH_NAMESPACE", "RUST_LOG", "LOG_FORMAT", "POD_NAME", "POD_NAMESPACE"} <= env.keys()


def test_optional_features_render_only_when_on():
    off = {d["kind"] for d in render({})}
    on = {d["kind"] for d in render(ALL_ON)}
    for kind in ["ServiceMonitor", "NetworkPolicy", "PodDisruptionBudget", "Ingress", "Role"]:
        assert kind not in off or kind == "Role", kind
        assert kind in on, kind
    roles = [d for d in render(ALL_ON) if d["kind"] == "Role"]
    assert any(r["metadata"].get("namespace") == "identity" for r in roles), "watchNamespace scopes RBAC"


def test_two_replicas_without_leader_election_are_refused():
    with pytest.raises(Exception) as e:
        render({"replicaCount": 2})
    assert "leaderElection" in str(e.value)


@pytest.mark.parametrize(
    "values,field",
    [({"replicaCount": "three"}, "replicaCount"), ({"bogus": 1}, "bogus"), ({"log": {"format": "xml"}}, "format")],
)
def test_values_schema_rejects_wrong_values(values, field):
    report = helm.lint(CHART, values)
    text = " ".join(str(e) for e in report["errors"])
    assert report["errors"], f"{values} accepted"
    assert field in text, text


def test_chart_crds_equal_crds_dir():
    chart_crds = sorted((ROOT / "charts/dingsync/files/crds").glob("*.yaml"))
    repo_crds = sorted((ROOT / "crds").glob("*.yaml"))
    assert [p.name for p in chart_crds] == [p.name for p in repo_crds]
    for a, b in zip(chart_crds, repo_crds):
        assert a.read_bytes() == b.read_bytes(), f"{a.name} differs from crds/: copy crds/*.yaml into charts/dingsync/files/crds/"


def declared_access():
    """(group, resource) -> verbs, parsed from the controller's API_ACCESS table."""
    text = (ROOT / "src/controller/access.rs").read_text()
    rows = re.findall(r'\(\s*"([^"]*)",\s*"([^"]+)",\s*&\[([^\]]*)\]', text)
    assert rows, "no rows parsed from access.rs"
    return {(g, r): set(re.findall(r'"([^"]+)"', verbs)) for g, r, verbs in rows}


def granted_access(docs):
    granted = {}
    for d in docs:
        if d["kind"] in ("ClusterRole", "Role"):
            for rule in d["rules"]:
                for g in rule["apiGroups"]:
                    for r in rule["resources"]:
                        granted.setdefault((g, r), set()).update(rule["verbs"])
    return granted


def test_rbac_grants_exactly_what_the_code_uses():
    declared = declared_access()
    granted = granted_access(render(ALL_ON))
    assert granted == declared, f"chart grants {granted}, code uses {declared}"
    # Without leader election the chart grants no Lease access at all.
    no_lease = granted_access(render({}))
    assert ("coordination.k8s.io", "leases") not in no_lease
