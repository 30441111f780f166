"""Render the chart's Grafana dashboard as a static PNG from scraped dingsync metrics.

Needs: `pip install matplotlib promql-parser` (promql-parser is in tests/requirements.txt).

    python docs/dashboard/render.py [metrics.txt.gz] [out.png]

Defaults: docs/dashboard/metrics.txt.gz -> docs/dashboard.png.

The input is a series of scrapes of the controller's `/metrics`, each preceded by
`# scrape <unix seconds>`, as `tests/bench/dashboard.rs` writes them from a real run (the
controller's reconciles with its production DingTalk client, engine and event feed, against
the simulator and slapd). The panels, their layout and their queries are read from
charts/dingsync/files/dashboard.json; each query is parsed with promql-parser and evaluated
here, at every scrape, by a small evaluator covering what the dashboard uses: selectors with
label matchers, rate/increase (no extrapolation), sum/max by, histogram_quantile, time(),
arithmetic and comparison filters between scalars and vectors or one-to-one vectors. Grafana's
`$__range` is the whole run, `$__rate_interval` 20 s, every variable `.*` (All).
"""

import gzip
import json
import math
import pathlib
import re
import sys

import promql_parser as pp

ROOT = pathlib.Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "charts" / "dingsync" / "files" / "dashboard.json"
RATE_INTERVAL = 20

SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$")
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def load(path):
    """[(t, {(name, labels): value})] where labels is a sorted tuple of (k, v)."""
    opener = gzip.open if str(path).endswith(".gz") else open
    scrapes = []
    with opener(path, "rt", encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("# scrape "):
                scrapes.append((float(line.split()[2]), {}))
            elif line and not line.startswith("#"):
                m = SAMPLE.match(line)
                if not m:
                    raise ValueError(f"cannot read sample {line!r}")
                labels = tuple(sorted(LABEL.findall(m.group(2) or "")))
                scrapes[-1][1][(m.group(1), labels)] = float(m.group(3))
    if not scrapes:
        raise ValueError(f"{path}: no `# scrape <t>` sections")
    return scrapes


class Evaluator:
    def __init__(self, scrapes):
        self.scrapes = scrapes
        self.times = [t for t, _ in scrapes]

    # -- selectors

    def _matches(self, sel, name, labels):
        if sel.name and sel.name != name:
            return False
        d = dict(labels)
        for m in sel.matchers.matchers:
            v, op = d.get(m.name, ""), str(m.op)
            if m.name == "__name__":
                v = name
            ok = {
                "MatchOp.Equal": lambda: v == m.value,
                "MatchOp.NotEqual": lambda: v != m.value,
                "MatchOp.Re": lambda: re.fullmatch(m.value, v) is not None,
                "MatchOp.NotRe": lambda: re.fullmatch(m.value, v) is None,
            }[op]()
            if not ok:
                return False
        return True

    def _select(self, sel, i):
        return {labels: v for (name, labels), v in self.scrapes[i][1].items() if self._matches(sel, name, labels)}

    def _window(self, msel, i):
        """{labels: [values in (t - range, t]]}."""
        t, rng = self.times[i], msel.range.total_seconds()
        out = {}
        for j in range(i + 1):
            if self.times[j] > t - rng:
                for labels, v in self._select(msel.vector_selector, j).items():
                    out.setdefault(labels, []).append(v)
        return out

    # -- evaluation: a float (scalar) or {labels: float} (vector)

    def eval(self, node, i):
        kind = type(node).__name__
        if kind == "NumberLiteral":
            return node.val
        if kind == "ParenExpr":
            return self.eval(node.expr, i)
        if kind == "VectorSelector":
            return self._select(node, i)
        if kind == "Call":
            return self._call(node, i)
        if kind == "AggregateExpr":
            return self._aggregate(node, i)
        if kind == "BinaryExpr":
            return self._binary(node, i)
        raise NotImplementedError(f"{kind} in {node.prettify()}")

    def _call(self, node, i):
        name = node.func.name
        if name == "time":
            return self.times[i]
        if name in ("rate", "increase"):
            (msel,) = node.args
            out = {}
            for labels, vs in self._window(msel, i).items():
                if len(vs) < 2:
                    continue
                inc = sum(b - a if b >= a else b for a, b in zip(vs, vs[1:]))  # counter resets
                out[labels] = inc / msel.range.total_seconds() if name == "rate" else inc
            return out
        if name == "histogram_quantile":
            q, vec = self.eval(node.args[0], i), self.eval(node.args[1], i)
            return histogram_quantile(q, vec)
        raise NotImplementedError(f"function {name}")

    def _aggregate(self, node, i):
        vec, op = self.eval(node.expr, i), str(node.op)
        keep = set(node.modifier.labels) if node.modifier else set()
        if node.modifier and "Without" in str(node.modifier.type):
            raise NotImplementedError("without")
        groups = {}
        for labels, v in vec.items():
            key = tuple((k, val) for k, val in labels if k in keep)
            groups.setdefault(key, []).append(v)
        fn = {"sum": sum, "max": max, "min": min, "count": len, "avg": lambda xs: sum(xs) / len(xs)}[op]
        return {k: fn(vs) for k, vs in groups.items()}

    def _binary(self, node, i):
        lhs, rhs, op = self.eval(node.lhs, i), self.eval(node.rhs, i), str(node.op)
        arith = {"+": float.__add__, "-": float.__sub__, "*": float.__mul__,
                 "/": lambda a, b: a / b if b else math.nan}
        cmp = {">": float.__gt__, "<": float.__lt__, ">=": float.__ge__, "<=": float.__le__,
               "==": float.__eq__, "!=": float.__ne__}
        f = arith.get(op) or cmp.get(op)
        if f is None:
            raise NotImplementedError(f"operator {op}")

        def apply(a, b, keep):
            r = f(float(a), float(b))
            if op in cmp:
                return keep if r else None
            return r

        if not isinstance(lhs, dict) and not isinstance(rhs, dict):
            return apply(lhs, rhs, lhs)
        if isinstance(lhs, dict) and not isinstance(rhs, dict):
            out = {k: apply(v, rhs, v) for k, v in lhs.items()}
        elif not isinstance(lhs, dict):
            out = {k: apply(lhs, v, v) for k, v in rhs.items()}
        else:
            out = {k: apply(v, rhs[k], v) for k, v in lhs.items() if k in rhs}
        return {k: v for k, v in out.items() if v is not None}


def histogram_quantile(q, vec):
    groups = {}
    for labels, v in vec.items():
        d = dict(labels)
        le = float(d.pop("le"))
        groups.setdefault(tuple(sorted(d.items())), []).append((le, v))
    out = {}
    for key, buckets in groups.items():
        buckets.sort()
        total = buckets[-1][1]
        if total <= 0 or len(buckets) < 2:
            continue
        rank, prev_le, prev_count = q * total, 0.0, 0.0
        for le, count in buckets:
            if count >= rank:
                if math.isinf(le):
                    out[key] = buckets[-2][0]
                elif count == prev_count:
                    out[key] = le
                else:
                    out[key] = prev_le + (le - prev_le) * (rank - prev_count) / (count - prev_count)
                break
            prev_le, prev_count = le, count
    return out


def legend(fmt, labels):
    d = dict(labels)
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: d.get(m.group(1), ""), fmt).strip() or "value"


def series_of(expr, ev):
    rng = int(ev.times[-1] - ev.times[0]) + 2
    for var, value in {"$__rate_interval": f"{RATE_INTERVAL}s", "$__range": f"{rng}s"}.items():
        expr = expr.replace(var, value)
    expr = re.sub(r"\$\w+", ".*", expr)
    ast = pp.parse(expr)
    out = {}
    for i in range(len(ev.times)):
        v = ev.eval(ast, i)
        if not isinstance(v, dict):
            v = {(): v}
        for labels, x in v.items():
            out.setdefault(labels, ([], []))
            out[labels][0].append(ev.times[i] - ev.times[0])
            out[labels][1].append(x)
    return out


UNITS = {"s": "seconds", "reqps": "calls / s", "ops": "events / s"}


def render(scrapes, out_png):
    import matplotlib  # only the picture needs it; tests/helm evaluates the queries without

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dash = json.loads(DASHBOARD.read_text())
    ev = Evaluator(scrapes)
    rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in dash["panels"])
    width, unit_h = 18.0, 0.42
    fig = plt.figure(figsize=(width, rows * unit_h))
    fig.patch.set_facecolor("#111217")
    H = rows * unit_h

    def box(g, pad_top=0.0):
        x0, w = g["x"] / 24, g["w"] / 24
        y_top = g["y"] * unit_h / H
        h = g["h"] * unit_h / H
        return [x0 + 0.035 / (24 / g["w"]) + 0.01, 1 - y_top - h + 0.028, w - 0.045, h - 0.05 - pad_top]

    for p in dash["panels"]:
        g = p["gridPos"]
        if p["type"] == "row":
            fig.text(0.01, 1 - (g["y"] + 0.75) * unit_h / H, p["title"], color="#ccccdc", fontsize=13,
                     weight="bold")
            continue
        ax = fig.add_axes(box(g))
        ax.set_facecolor("#181b1f")
        for s in ax.spines.values():
            s.set_color("#2c3235")
        ax.tick_params(colors="#9fa7b3", labelsize=7)
        ax.set_title(p["title"], color="#ccccdc", fontsize=10, loc="left")
        unit = p.get("fieldConfig", {}).get("defaults", {}).get("unit")
        if unit:
            ax.set_ylabel(UNITS.get(unit, unit), color="#9fa7b3", fontsize=7)
        ax.grid(color="#2c3235", linewidth=0.5)
        drawn = 0
        for t in p["targets"]:
            for labels, (xs, ys) in sorted(series_of(t["expr"], ev).items()):
                ax.plot(xs, ys, linewidth=1.4, label=legend(t.get("legendFormat", ""), labels))
                drawn += 1
        if drawn:
            ax.legend(fontsize=6, loc="upper left", framealpha=0.3, labelcolor="#ccccdc",
                      facecolor="#181b1f", edgecolor="#2c3235", ncol=2 if drawn > 5 else 1)
        else:
            ax.text(0.5, 0.5, "no data", color="#9fa7b3", ha="center", va="center", transform=ax.transAxes)
        ax.set_xlim(0, ev.times[-1] - ev.times[0])
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda x, _: f"{int(x) // 60}:{int(x) % 60:02d}"))
    fig.text(0.99, 0.003, "dingsync dashboard, rendered from a real run (tests/bench/dashboard.rs); "
             "x axis: minutes since the run began", color="#6e7681", fontsize=7, ha="right")
    fig.savefig(out_png, dpi=72, facecolor=fig.get_facecolor())


def main():
    src = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "dashboard" / "metrics.txt.gz"
    out = pathlib.Path(sys.argv[2]) if len(sys.argv) > 2 else ROOT / "docs" / "dashboard.png"
    render(load(src), out)
    print(f"wrote {out} ({out.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
