"""The chart's Grafana dashboard and PrometheusRule, held to the metrics the binary exports.

The exported metrics are read from the Rust source, `src/controller/metrics.rs`, the way
test_chart.py reads the RBAC table: every `register(...)` call and every collector's
`encode_descriptor(...)` call must parse (name, type, label set), or the test fails naming the
call it could not read, so a reformatted registration never passes silently. From the type
follow the exposed names (prometheus-client appends `_total` to counters; histograms expose
`_bucket` with `le`, `_sum` and `_count`).

Every PromQL expression of the dashboard (panel targets and template variables) and of the
rules is then tokenized: each metric it names must be exported, each label it matches on or
groups by must be a label of a metric in the same expression (or one Prometheus adds at
scrape), each function must be a PromQL function; and, with `promql-parser`, the whole
expression must parse.

Run: `.venv/bin/python -m pytest tests/helm`.
"""

import json
import pathlib
import re

import jsonschema
import promql_parser  # no skip: a missing parser is a failure, like test_chart's validator
import pytest
import yaml

from test_chart import ALL_ON, CHART_DIR, NAMESPACE, ROOT, lint, render

METRICS_RS = ROOT / "src" / "controller" / "metrics.rs"
DASHBOARD_JSON = CHART_DIR / "files" / "dashboard.json"
MONITORING_ON = {"dashboard": {"enabled": True}, "prometheusRule": {"enabled": True}}

# Labels Prometheus attaches to every scraped series (ServiceMonitor or plain scrape config).
SCRAPE_LABELS = {"instance", "job", "namespace", "pod", "service", "container", "endpoint"}


# ---------------------------------------------------------------------------------------------
# What the binary exports, from src/controller/metrics.rs


def _strip_comments(text):
    return re.sub(r"//[^\n]*", "", text)


def _label_structs(text):
    """{StructName: [label, …]} of every `#[derive(… EncodeLabelSet)]` struct."""
    out = {}
    for derive, name, body in re.findall(r"#\[derive\(([^)]*)\)\]\s*pub struct (\w+)\s*\{([^}]*)\}", text):
        if "EncodeLabelSet" not in derive:
            continue
        fields = re.findall(r"pub\s+(\w+)\s*:\s*String\s*,?", body)
        assert fields and len(fields) == body.count(":"), f"label struct {name}: every field must be `pub x: String`"
        out[name] = fields
    return out


def _metric_type(ty, labels, where):
    """(type, label struct or None) of a field type such as `Family<KindLabels, Histogram>`."""
    ty = re.sub(r"\s+", "", ty)
    m = re.fullmatch(r"Family(?:::)?<(\w+),(Counter|Gauge|Histogram)>", ty)
    if m:
        assert m.group(1) in labels, f"{where}: {m.group(1)} is not an EncodeLabelSet struct"
        return m.group(2).lower(), m.group(1)
    m = re.fullmatch(r"(Counter|Gauge|Histogram)", ty)
    assert m, f"{where}: cannot read the metric type {ty!r}"
    return m.group(1).lower(), None


def _struct_fields(text, name):
    """{field: type} of `pub struct name { … }` (types may hold commas inside `<>`)."""
    m = re.search(rf"pub struct {name}\s*\{{", text)
    assert m, f"no `pub struct {name}` in metrics.rs"
    depth, i = 1, m.end()
    while depth:
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        i += 1
    fields, depth, cur = {}, 0, ""
    for ch in text[m.end() : i - 1] + ",":
        depth += {"<": 1, "(": 1, "[": 1, ">": -1, ")": -1, "]": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            if cur.strip():
                f = re.fullmatch(r"\s*(?:pub(?:\(crate\))?\s+)?(\w+)\s*:\s*(.+?)\s*", cur, re.S)
                assert f, f"metrics.rs: cannot read field {cur.strip()!r} of {name}"
                fields[f.group(1)] = f.group(2)
            cur = ""
        else:
            cur += ch
    return fields


def parse_metrics(text):
    """{exposed series name: set of labels} of everything metrics.rs registers."""
    text = _strip_comments(text)
    prefix = re.findall(r'Registry::with_prefix\("(\w+)"\)', text)
    assert len(prefix) == 1, "metrics.rs: want exactly one Registry::with_prefix(\"…\")"
    prefix = prefix[0]
    labels = _label_structs(text)
    fields = {}
    for struct in ("Metrics", "TargetMetrics"):
        if re.search(rf"pub struct {struct}\b", text):
            fields.update(_struct_fields(text, struct))
    families = {}  # base name -> (type, labels)

    calls = re.findall(r"\.register\((.*?)\);", text, re.S)
    assert len(calls) == len(re.findall(r"\.register\(", text)), "a register( call metrics.rs cannot delimit"
    assert calls, "no register( calls in metrics.rs"
    for call in calls:
        m = re.fullmatch(r'\s*"(\w+)"\s*,\s*"(?:[^"\\]|\\.)*"\s*,\s*(?:\w+\.)?(\w+)\.clone\(\)\s*,?\s*', call, re.S)
        assert m, f"metrics.rs: cannot read register({call.strip()!r})"
        name, field = m.groups()
        assert field in fields, f"metrics.rs: register({name!r}) uses {field!r}, not a field of Metrics/TargetMetrics"
        assert name not in families, f"metrics.rs registers {name!r} twice"
        families[name] = _metric_type(fields[field], labels, f"register({name!r})")

    local = {
        var: (ty, lab)
        for var, lab, ty in re.findall(r"let\s+(\w+)\s*=\s*Family::<(\w+),\s*(Counter|Gauge|Histogram)>::default\(\)", text)
    }
    descriptors = list(re.finditer(r"encode_descriptor\((.*?)\)\?;", text, re.S))
    assert len(descriptors) == len(re.findall(r"encode_descriptor\(", text)) - text.count("fn encode_descriptor")
    for d in descriptors:
        m = re.fullmatch(
            r'\s*"(\w+)"\s*,\s*"(?:[^"\\]|\\.)*"\s*,\s*None\s*,\s*MetricType::(Counter|Gauge|Histogram)\s*,?\s*', d.group(1), re.S
        )
        assert m, f"metrics.rs: cannot read encode_descriptor({d.group(1).strip()!r})"
        name, ty = m.group(1), m.group(2).lower()
        enc = re.search(r"(\w+)\.encode\(", text[d.end() :])
        assert enc and enc.group(1) in local, f"metrics.rs: descriptor {name!r} is not followed by a local Family's encode"
        fam_ty, lab = local[enc.group(1)]
        assert fam_ty.lower() == ty, f"metrics.rs: descriptor {name!r} says {ty}, its Family is {fam_ty}"
        assert name not in families, f"metrics.rs exports {name!r} twice"
        families[name] = (ty, lab)

    exported = {}
    for name, (ty, lab) in families.items():
        base, ls = f"{prefix}_{name}", set(labels[lab]) if lab else set()
        if ty == "counter":
            exported[f"{base}_total"] = ls
        elif ty == "gauge":
            exported[base] = ls
        else:
            exported[f"{base}_bucket"] = ls | {"le"}
            exported[f"{base}_sum"] = ls
            exported[f"{base}_count"] = ls
    return exported


@pytest.fixture(scope="module")
def exported():
    return parse_metrics(METRICS_RS.read_text())


def test_metrics_rs_parses(exported):
    for name in [
        "dingsync_events_total",
        "dingsync_event_lag_seconds_bucket",
        "dingsync_event_connection_up",
        "dingsync_reconcile_failures_total",
        "dingsync_target_ready",
        "dingsync_sync_failed_objects_total",
        "dingsync_dingtalk_calls_total",
        "dingsync_dingtalk_throttled_total",
    ]:
        assert name in exported, name
    assert exported["dingsync_reconcile_failures_total"] == {"kind", "reason"}
    assert exported["dingsync_event_lag_seconds_bucket"] == {"le"}
    assert exported["dingsync_dingtalk_calls_total"] == {"corp_id", "api"}


def test_metrics_parser_is_strict():
    good = (ROOT / "src" / "controller" / "metrics.rs").read_text()
    with pytest.raises(AssertionError, match="cannot read register"):
        parse_metrics(good.replace('"leader",', "LEADER_NAME,", 1))
    with pytest.raises(AssertionError, match="cannot read encode_descriptor"):
        parse_metrics(good.replace("MetricType::Counter", "metric_type()", 1))
    with pytest.raises(AssertionError, match="cannot read the metric type"):
        parse_metrics(good.replace("pub leader: Gauge,", "pub leader: MyGauge,", 1))


# ---------------------------------------------------------------------------------------------
# PromQL: tokenizer and checks

FUNCTIONS = {
    "abs", "absent", "absent_over_time", "avg_over_time", "ceil", "changes", "clamp", "clamp_max",
    "clamp_min", "count_over_time", "delta", "deriv", "floor", "histogram_quantile", "holt_winters",
    "idelta", "increase", "irate", "label_join", "label_replace", "last_over_time", "max_over_time",
    "min_over_time", "predict_linear", "quantile_over_time", "rate", "resets", "round", "scalar",
    "sort", "sort_desc", "sqrt", "stddev_over_time", "sum_over_time", "time", "timestamp", "vector",
}
AGGREGATORS = {"sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile", "group",
               "count_values"}
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool", "and", "or", "unless"}
GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}

TOKEN = re.compile(
    r'\s+|(?P<str>"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\')|(?P<var>\$\w+)|(?P<dur>\d+(?:ms|s|m|h|d|w|y))'
    r"|(?P<num>\d+(?:\.\d+)?(?:e[-+]?\d+)?)|(?P<id>[A-Za-z_:][A-Za-z0-9_:]*)"
    r"|(?P<op>=~|!~|!=|==|>=|<=|[-+*/%^<>=(){}\[\],])"
)


def tokenize(expr):
    out, i = [], 0
    while i < len(expr):
        m = TOKEN.match(expr, i)
        assert m and m.end() > i, f"cannot tokenize {expr[i:i + 20]!r} in {expr!r}"
        if m.lastgroup:
            out.append((m.lastgroup, m.group(m.lastgroup)))
        i = m.end()
    return out


def check_expr(expr, exported):
    """The metrics `expr` names (a set); fails on an unknown metric, label, function or an
    unbalanced bracket."""
    toks = tokenize(expr)
    pairs, stack = {"(": ")", "[": "]", "{": "}"}, []
    for kind, t in toks:
        if t in pairs:
            stack.append(pairs[t])
        elif t in pairs.values():
            assert stack and stack.pop() == t, f"unbalanced {t!r} in {expr!r}"
    assert not stack, f"unclosed brackets in {expr!r}"

    metrics, labels_used = set(), set()
    depth_brace, grouping_depth, paren_depth = 0, None, 0
    for n, (kind, t) in enumerate(toks):
        nxt = toks[n + 1][1] if n + 1 < len(toks) else None
        if t == "{":
            depth_brace += 1
        elif t == "}":
            depth_brace -= 1
        elif t == "(":
            paren_depth += 1
        elif t == ")":
            if grouping_depth == paren_depth:
                grouping_depth = None
            paren_depth -= 1
        if kind != "id":
            continue
        if depth_brace:  # a label matcher's name
            assert nxt in ("=", "!=", "=~", "!~"), f"{t!r} in a selector of {expr!r}"
            labels_used.add(t)
        elif grouping_depth is not None:
            labels_used.add(t)
        elif t in GROUPING:
            assert nxt == "(", f"{t} without a label list in {expr!r}"
            grouping_depth = paren_depth + 1
        elif t in KEYWORDS:
            pass
        elif t in AGGREGATORS and nxt in ("(", "by", "without"):
            pass
        elif nxt == "(":
            assert t in FUNCTIONS, f"unknown function {t!r} in {expr!r}"
        else:
            assert t in exported, f"{t!r} in {expr!r} is not a metric dingsync exports"
            metrics.add(t)
    assert metrics or expr.strip() == "time()", f"no metric in {expr!r}"
    known = set().union(*(exported[m] for m in metrics)) | SCRAPE_LABELS
    unknown = labels_used - known
    assert not unknown, f"labels {sorted(unknown)} are not labels of {sorted(metrics)} in {expr!r}"
    return metrics


GRAFANA_VARS = {"$__rate_interval": "5m", "$__range": "6h", "$__interval": "1m"}


def parse_promql(expr):
    for var, value in GRAFANA_VARS.items():
        expr = expr.replace(var, value)
    try:
        return promql_parser.parse(expr)
    except Exception as e:  # the parser raises its own error type
        pytest.fail(f"PromQL does not parse: {expr!r}: {e}")


def test_checker_catches_unknown_metrics_labels_and_functions(exported):
    assert check_expr('sum by (reason) (rate(dingsync_reconcile_failures_total{kind="X"}[5m]))', exported) == {
        "dingsync_reconcile_failures_total"
    }
    for bad in [
        "dingsync_no_such_metric",
        "rate(dingsync_reconciles[5m])",  # a counter without _total
        "sum by (corp) (dingsync_event_connection_up)",
        'dingsync_target_ready{namespace_x="a"}',
        "rates(dingsync_reconciles_total[5m])",
        "sum(rate(dingsync_reconciles_total[5m])",
    ]:
        with pytest.raises(AssertionError):
            check_expr(bad, exported)
    with pytest.raises(pytest.fail.Exception):
        parse_promql("sum by (kind (dingsync_reconciles_total)")


# ---------------------------------------------------------------------------------------------
# The dashboard


def dashboard_exprs(dash):
    """[(where, expr)] of every panel target and template variable query."""
    out = []
    for panel in dash["panels"]:
        for sub in [panel, *panel.get("panels", [])]:
            for t in sub.get("targets", []):
                out.append((f"panel {sub['title']!r} {t['refId']}", t["expr"]))
    return out


def variable_queries(dash):
    out = []
    for var in dash["templating"]["list"]:
        if var["type"] != "query":
            continue
        q = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
        m = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", q)
        assert m, f"variable {var['name']}: want label_values(selector, label), got {q!r}"
        out.append((var["name"], m.group(1), m.group(2)))
    return out


def test_dashboard_json_parses_and_is_complete(exported):
    dash = json.loads(DASHBOARD_JSON.read_text())
    assert dash["uid"] == "dingsync" and dash["panels"]
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    exprs = dashboard_exprs(dash)
    assert exprs
    used = set()
    for where, expr in exprs:
        used |= check_expr(expr, exported)
        parse_promql(expr)
    # What the dashboard promises to show, per target.
    for metric in [
        "dingsync_target_people",
        "dingsync_target_last_sync_timestamp_seconds",
        "dingsync_sync_failed_objects_total",
        "dingsync_sync_duration_seconds_bucket",
        "dingsync_dingtalk_calls_total",
        "dingsync_dingtalk_throttled_total",
        "dingsync_event_lag_seconds_bucket",
        "dingsync_event_connection_up",
    ]:
        assert metric in used, f"no panel shows {metric}"
    for name, selector, label in variable_queries(dash):
        metrics = check_expr(selector, exported)
        assert any(label in exported[m] for m in metrics), f"variable {name}: {label} is not a label of {metrics}"
    # Every $variable a query uses is defined.
    defined = {v["name"] for v in dash["templating"]["list"]}
    for where, expr in exprs:
        for var in re.findall(r"\$(\w+)", expr):
            assert var.startswith("__") or var in defined, f"{where} uses undefined ${var}"
    for panel in dash["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]


def rendered_dashboard(values):
    return [d for d in render(values) if d["kind"] == "ConfigMap" and "grafana_dashboard" in d["metadata"]["labels"]]


def test_dashboard_configmap_renders_only_when_enabled():
    assert rendered_dashboard({}) == []
    (cm,) = rendered_dashboard(MONITORING_ON)
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["namespace"] == NAMESPACE
    assert json.loads(cm["data"]["dingsync.json"]) == json.loads(DASHBOARD_JSON.read_text())
    (cm,) = rendered_dashboard({"dashboard": {"enabled": True, "namespace": "monitoring",
                                              "annotations": {"grafana_folder": "Identity"}}})
    assert cm["metadata"]["namespace"] == "monitoring"
    assert cm["metadata"]["annotations"] == {"grafana_folder": "Identity"}


def test_values_default_off_and_schema_checked():
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    assert values["dashboard"]["enabled"] is False
    assert values["prometheusRule"]["enabled"] is False
    for bad in [{"dashboard": {"enabled": "yes"}}, {"dashboard": {"enable": True}},
                {"prometheusRule": {"notReadyFor": "15 minutes"}}, {"prometheusRule": {"eventLagSeconds": 0}}]:
        report = lint(bad)
        assert report["errors"], f"{bad} passed the schema"


# ---------------------------------------------------------------------------------------------
# The PrometheusRule

DURATION = r"^([0-9]+(ms|s|m|h|d|w|y))+$"
STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
PROMETHEUS_RULE_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "PrometheusRule"},
        "metadata": {"type": "object", "required": ["name", "namespace"]},
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["groups"],
            "properties": {
                "groups": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["name", "rules"],
                        "properties": {
                            "name": {"type": "string", "minLength": 1},
                            "interval": {"type": "string", "pattern": DURATION},
                            "rules": {
                                "type": "array",
                                "minItems": 1,
                                "items": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "required": ["alert", "expr", "labels", "annotations"],
                                    "properties": {
                                        "alert": {"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$"},
                                        "expr": {"type": "string", "minLength": 1},
                                        "for": {"type": "string", "pattern": DURATION},
                                        "labels": {**STRING_MAP, "required": ["severity"]},
                                        "annotations": {**STRING_MAP, "required": ["summary", "description"]},
                                    },
                                },
                            },
                        },
                    },
                }
            },
        },
    },
}

ALERTS = {
    "DingsyncTargetNotReady": "15m",
    "DingsyncTargetQuarantined": None,
    "DingsyncEventsDisconnected": "5m",
    "DingsyncEventLagHigh": None,
    "DingsyncSyncFailuresRising": None,
    "DingsyncDeletionsHeld": "1h",
}


def rule_docs(values):
    return [d for d in render(values) if d["kind"] == "PrometheusRule"]


def rules_of(doc):
    return [r for g in doc["spec"]["groups"] for r in g["rules"]]


def test_prometheus_rule_renders_only_when_enabled():
    assert rule_docs({}) == []
    assert len(rule_docs(MONITORING_ON)) == 1


def test_prometheus_rule_is_valid(exported):
    (doc,) = rule_docs(MONITORING_ON)
    jsonschema.validate(doc, PROMETHEUS_RULE_SCHEMA)
    rules = rules_of(doc)
    names = [r["alert"] for r in rules]
    assert len(names) == len(set(names))
    assert set(names) == set(ALERTS)
    for r in rules:
        check_expr(r["expr"], exported)
        parse_promql(r["expr"])
        if ALERTS[r["alert"]]:
            assert r["for"] == ALERTS[r["alert"]], r["alert"]
        assert r["labels"]["severity"] in ("warning", "critical")
        for text in r["annotations"].values():
            # Prometheus alert templates: balanced, and only $labels / $value.
            assert text.count("{{") == text.count("}}"), text
            for tmpl in re.findall(r"\{\{(.*?)\}\}", text):
                assert re.match(r"\s*\$(labels\.\w+|value)\b", tmpl), f"{r['alert']}: template {tmpl!r}"
                m = re.match(r"\s*\$labels\.(\w+)", tmpl)
                if m:
                    labels = set().union(*(exported[x] for x in check_expr(r["expr"], exported)))
                    assert m.group(1) in labels, f"{r['alert']}: $labels.{m.group(1)} is not a label of its series"
    not_ready = next(r for r in rules if r["alert"] == "DingsyncTargetNotReady")
    assert "unless" in not_ready["expr"] and "dingsync_target_suspended" in not_ready["expr"], "suspended is not Ready on purpose"
    lag = next(r for r in rules if r["alert"] == "DingsyncEventLagHigh")
    assert "0.99" in lag["expr"] and lag["expr"].rstrip().endswith("> 60")


def test_rule_schema_catches_mistakes():
    (doc,) = rule_docs(MONITORING_ON)
    for breaking in [
        lambda d: d["spec"]["groups"][0]["rules"][0].update({"for": "15 minutes"}),
        lambda d: d["spec"]["groups"][0]["rules"][0].pop("expr"),
        lambda d: d["spec"]["groups"][0]["rules"][0]["labels"].pop("severity"),
        lambda d: d["spec"]["groups"][0]["rules"][0].update({"expresion": "up"}),
    ]:
        broken = json.loads(json.dumps(doc))
        breaking(broken)
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, PROMETHEUS_RULE_SCHEMA)


def test_rule_values_reach_the_rules():
    (doc,) = rule_docs({"prometheusRule": {"enabled": True, "notReadyFor": "30m", "eventLagSeconds": 120,
                                           "labels": {"release": "prometheus"}, "ruleLabels": {"team": "identity"}}})
    assert doc["metadata"]["labels"]["release"] == "prometheus"
    rules = {r["alert"]: r for r in rules_of(doc)}
    assert rules["DingsyncTargetNotReady"]["for"] == "30m"
    assert rules["DingsyncEventLagHigh"]["expr"].rstrip().endswith("> 120")
    assert all(r["labels"]["team"] == "identity" for r in rules.values())


def test_event_lag_threshold_lies_inside_a_finite_bucket():
    """histogram_quantile never reports above the highest finite bucket, so a threshold at or
    above it could never fire."""
    text = METRICS_RS.read_text()
    m = re.search(r"let event_lag = Histogram::new\(\[([^\]]*)\]\)", text)
    assert m, "metrics.rs: cannot read the event_lag buckets"
    top = max(float(x) for x in m.group(1).replace("\n", " ").split(",") if x.strip())
    threshold = yaml.safe_load((CHART_DIR / "values.yaml").read_text())["prometheusRule"]["eventLagSeconds"]
    assert threshold < top


def test_all_features_include_monitoring():
    """test_chart.py's all-features render (lint, Kubernetes schemas, labels, namespaces)
    covers the dashboard and the rules too."""
    assert ALL_ON.get("dashboard", {}).get("enabled") and ALL_ON.get("prometheusRule", {}).get("enabled")


# ---------------------------------------------------------------------------------------------
# Against a real run's scrapes (docs/dashboard/metrics.txt.gz, written by
# tests/bench/dashboard.rs): the names the binary really exposes are the ones parsed above,
# and the dashboard's queries, evaluated by docs/dashboard/render.py, find data.

SCRAPES = ROOT / "docs" / "dashboard" / "metrics.txt.gz"


def _render_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("render", ROOT / "docs" / "dashboard" / "render.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def real_run():
    render = _render_module()
    return render, render.load(SCRAPES)


def test_a_real_exposition_matches_the_parsed_metrics(exported, real_run):
    _, scrapes = real_run
    seen = {}
    for _, samples in scrapes:
        for name, labels in samples:
            seen.setdefault(name, set()).update(k for k, _ in labels)
    assert seen
    for name, labels in seen.items():
        assert name in exported, f"the binary exposed {name}, which the metrics.rs parser does not know"
        assert labels == exported[name], f"{name}: exposed labels {labels}, parsed {exported[name]}"


def test_every_dashboard_panel_finds_data_in_a_real_run(real_run):
    render, scrapes = real_run
    ev = render.Evaluator(scrapes)
    dash = json.loads(DASHBOARD_JSON.read_text())
    # Throttling needs DingTalk's QPS limit to answer, which a client within quota never meets.
    may_be_empty = {"DingTalk throttled answers by API"}
    for panel in dash["panels"]:
        if panel["type"] == "row":
            continue
        found = {}
        for t in panel["targets"]:
            found.update(render.series_of(t["expr"], ev))
        if panel["title"] not in may_be_empty:
            assert found, f"panel {panel['title']!r} finds no data in the real run"
