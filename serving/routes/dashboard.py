"""The operations dashboard without Grafana: ``GET /dashboard`` (an HTML page with inline SVG
charts, nothing loaded from elsewhere) and ``GET /dashboard/figures`` (the same figures as JSON,
what ``driftloop dashboard`` prints).

It shows what the Grafana dashboard (``dashboards/driftloop.json``) shows, from the same
sources: this replica's Prometheus registry (requests, errors, latency by version and variant,
canary weight, capture drops) and the loop's records (monitor windows with drift share and
estimated / observed ROC AUC, rollout decisions, retrains; :mod:`serving.loopstate`). Counters
are this replica's since it started; Grafana sums every replica.

Access is that of the other read routes (metadata, ``/metrics``): no token, and with auth off
only a loopback Host (:func:`serving.routes.deps.get_plane`), so a rebinding page cannot read it.
"""

from __future__ import annotations

import html
import math
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from serving.loopstate import LoopState
from serving.metrics import ServingMetrics
from serving.routes.deps import PlaneDep, Services

# Pages for people and the CLI, like /docs: not part of the documented API.
router = APIRouter(tags=["ops"], include_in_schema=False)

#: The page loads nothing (its charts are inline SVG, its style inline CSS).
PAGE_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'"
#: Decisions listed on the page (the newest).
RECENT = 12


def _samples(metrics: ServingMetrics) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Every sample of the registry by sample name (``..._total``, ``..._bucket`` ...)."""
    out: dict[str, list[tuple[dict[str, str], float]]] = defaultdict(list)
    for family in metrics.registry.collect():
        for sample in family.samples:
            out[sample.name].append((dict(sample.labels), float(sample.value)))
    return out


def _quantile(q: float, buckets: list[tuple[float, float]]) -> float | None:
    """``histogram_quantile`` of Prometheus over cumulative ``(upper bound, count)`` buckets."""
    buckets = sorted(buckets)
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower
            if count == below:
                return bound
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    return lower


def traffic(metrics: ServingMetrics) -> list[dict[str, Any]]:
    """Requests, errors, rows and latency quantiles by (model_version, variant)."""
    s = _samples(metrics)
    rows: dict[tuple[str, str], dict[str, Any]] = {}

    def row(labels: dict[str, str]) -> dict[str, Any]:
        key = (labels.get("model_version", ""), labels.get("variant", ""))
        return rows.setdefault(
            key,
            {"model_version": key[0], "variant": key[1], "requests": 0, "errors": 0, "rows": 0},
        )

    for name, field in (
        ("driftloop_inference_requests_total", "requests"),
        ("driftloop_inference_errors_total", "errors"),
        ("driftloop_inference_rows_total", "rows"),
    ):
        for labels, value in s.get(name, []):
            # += : live and synthetic traffic are two series of one (version, variant)
            row(labels)[field] += int(value)
    # cumulative counts per bucket bound, summed over the series of one (version, variant)
    summed: dict[tuple[str, str], dict[float, float]] = defaultdict(lambda: defaultdict(float))
    for labels, value in s.get("driftloop_inference_latency_seconds_bucket", []):
        key = (labels.get("model_version", ""), labels.get("variant", ""))
        summed[key][float(labels["le"])] += value
    buckets = {key: sorted(found.items()) for key, found in summed.items()}
    for key, found in rows.items():
        for q in (0.5, 0.95, 0.99):
            seconds = _quantile(q, buckets.get(key, []))
            found[f"p{round(q * 100)}_ms"] = None if seconds is None else seconds * 1e3
        found["error_rate"] = found["errors"] / found["requests"] if found["requests"] else 0.0
    return [rows[k] for k in sorted(rows)]


def capture(metrics: ServingMetrics) -> dict[str, Any]:
    s = _samples(metrics)
    written = {la["kind"]: int(v) for la, v in s.get("driftloop_capture_rows_written_total", [])}
    dropped = [
        {"kind": la["kind"], "reason": la["reason"], "rows": int(v)}
        for la, v in s.get("driftloop_capture_rows_dropped_total", [])
    ]
    return {"written": written, "dropped": dropped}


def figures(services: Services, loop: LoopState, health: dict[str, Any]) -> dict[str, Any]:
    """Everything the page shows, as JSON-ready values."""
    metrics = services.metrics
    metrics.set_state(health)
    found = loop.figures()
    return {
        "model": services.settings.mlflow.registered_model,
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "serving": {
            k: health.get(k)
            for k in ("status", "champion", "challenger", "canary_weight", "mode", "last_error")
        },
        "traffic": traffic(metrics),
        "capture": capture(metrics),
        "drift_share_threshold": services.settings.monitoring.drift_share_threshold,
        "monitor": [w.__dict__ for w in found.monitor],
        "verdicts": dict(found.verdicts()),
        "rollout_decisions": dict(found.rollout_decisions()),
        "retrains": dict(found.retrain_states()),
        "recent_decisions": [
            {
                "created": r.get("created"),
                "kind": r.get("kind"),
                "versions": r.get("versions") or {"judged": r.get("version")},
                "decision": r.get("decision"),
                "reason": r.get("reason"),
            }
            for r in sorted(
                [*found.rollouts, *({"kind": "monitor", **w.__dict__} for w in found.monitor)],
                key=lambda r: str(r.get("created", "")),
            )[-RECENT:][::-1]
        ],
        "recent_retrains": [
            {k: r.get(k) for k in ("requested_at", "window", "status", "reason", "outcome")}
            for r in found.retrains[-RECENT:][::-1]
        ],
    }


@router.get("/dashboard/figures")
async def dashboard_figures(request: Request, plane: PlaneDep) -> dict[str, Any]:
    """The dashboard's figures as JSON (this replica's counters and the loop's records)."""
    return figures(request.app.state.services, request.app.state.loop, plane.health())


@router.get("/dashboard", response_class=HTMLResponse)
async def dashboard_page(request: Request, plane: PlaneDep) -> HTMLResponse:
    """Requests, errors and latency by version and variant, canary weight, capture drops, drift
    share and estimated performance per monitor window, retrains and decisions."""
    data = figures(request.app.state.services, request.app.state.loop, plane.health())
    page = HTMLResponse(render(data))
    page.headers["Content-Security-Policy"] = PAGE_CSP
    page.headers["Cache-Control"] = "no-store"
    return page


# -- rendering ------------------------------------------------------------------------------
E = html.escape
STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:0;background:#f5f6f8;color:#1d2330}
header{background:#1d2330;color:#fff;padding:14px 24px}header h1{margin:0;font-size:20px}
header p{margin:4px 0 0;color:#c5cad6}main{padding:16px 24px;display:grid;gap:16px;
grid-template-columns:repeat(auto-fit,minmax(420px,1fr))}section{background:#fff;
border-radius:6px;padding:12px 16px;box-shadow:0 1px 2px #0002}h2{font-size:15px;margin:0 0 8px}
table{border-collapse:collapse;width:100%;font-size:13px}td,th{padding:3px 6px;text-align:left;
border-bottom:1px solid #eee}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.big{font-size:30px;font-weight:600}.muted{color:#6b7280}.bad{color:#b91c1c}.ok{color:#15803d}
.wide{grid-column:1/-1}svg text{font:11px system-ui,sans-serif;fill:#374151}
"""
COLORS = ("#2563eb", "#f59e0b", "#10b981", "#ef4444", "#8b5cf6", "#0ea5e9")


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return E(str(value))


def _bars(items: list[tuple[str, float]], unit: str = "") -> str:
    """A horizontal bar chart (inline SVG) of ``(label, value)``."""
    if not items:
        return '<p class="muted">nothing yet</p>'
    top = max(v for _, v in items) or 1.0
    height = 22 * len(items) + 6
    bars = []
    for i, (label, value) in enumerate(items):
        y = 4 + 22 * i
        width = 150 * value / top
        bars.append(
            f'<text x="0" y="{y + 13}">{E(label)}</text>'
            f'<rect x="130" y="{y}" width="{width:.1f}" height="16" fill="{COLORS[i % 6]}"/>'
            f'<text x="{135 + width:.1f}" y="{y + 13}">{value:g}{E(unit)}</text>'
        )
    return f'<svg width="100%" viewBox="0 0 360 {height}" role="img">{"".join(bars)}</svg>'


def _lines(windows: list[dict[str, Any]], threshold: float) -> str:
    """Drift share and ROC AUC (estimated, observed, KPI) per monitor window (inline SVG)."""
    if not windows:
        return (
            '<p class="muted">no monitor window judged yet (the monitor flow writes one per '
            "run: <code>driftloop monitor run</code>)</p>"
        )
    w, h, left, top, bottom = 640, 220, 40, 10, 40
    n = len(windows)

    def x(i: int) -> float:
        return left + (w - left - 10) * (i / (n - 1) if n > 1 else 0.5)

    def y(v: float) -> float:
        return top + (h - top - bottom) * (1.0 - max(0.0, min(1.0, v)))

    parts = [
        f'<line x1="{left}" y1="{y(t):.1f}" x2="{w - 10}" y2="{y(t):.1f}" stroke="#e5e7eb"/>'
        f'<text x="4" y="{y(t) + 4:.1f}">{t:.2f}</text>'
        for t in (0.0, 0.25, 0.5, 0.75, 1.0)
    ]
    parts.append(
        f'<line x1="{left}" y1="{y(threshold):.1f}" x2="{w - 10}" y2="{y(threshold):.1f}" '
        'stroke="#ef4444" stroke-dasharray="4 3"/>'
    )
    series = (
        ("drift_share", "drift share", COLORS[3]),
        ("estimated_auc", "estimated AUC", COLORS[0]),
        ("observed_auc", "observed AUC", COLORS[2]),
        ("kpi_auc", "KPI AUC", "#9ca3af"),
    )
    for key, _label, color in series:
        points = [(x(i), y(float(v[key]))) for i, v in enumerate(windows) if v[key] is not None]
        if points:
            path = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
            parts.append(
                f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"/>'
            )
            parts.extend(
                f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3" fill="{color}"/>' for px, py in points
            )
    step = max(1, n // 6)
    for i in range(0, n, step):
        # month-day and time: the demo's windows all end on one day
        label = str(windows[i].get("end") or windows[i].get("created") or "")[5:16].replace(
            "T", " "
        )
        parts.append(f'<text x="{x(i) - 28:.1f}" y="{h - bottom + 16}">{E(label)}</text>')
    legend = "".join(
        f'<rect x="{left + 130 * i}" y="{h - 14}" width="10" height="10" fill="{c}"/>'
        f'<text x="{left + 14 + 130 * i}" y="{h - 5}">{E(label)}</text>'
        for i, (_, label, c) in enumerate(series)
    )
    legend += (
        f'<text x="{left + 520}" y="{h - 5}" fill="#ef4444">- - drift threshold '
        f"{threshold:.2f}</text>"
    )
    return f'<svg width="100%" viewBox="0 0 {w + 80} {h}" role="img">{"".join(parts)}{legend}</svg>'


def _table(head: list[str], rows: list[list[str]], numeric: set[int] | None = None) -> str:
    numeric = numeric or set()
    if not rows:
        return '<p class="muted">nothing yet</p>'
    th = "".join(
        f'<th class="{"n" if i in numeric else ""}">{E(h)}</th>' for i, h in enumerate(head)
    )
    body = "".join(
        "<tr>"
        + "".join(f'<td class="{"n" if i in numeric else ""}">{c}</td>' for i, c in enumerate(r))
        + "</tr>"
        for r in rows
    )
    return f"<table><tr>{th}</tr>{body}</table>"


def render(data: dict[str, Any]) -> str:
    """The dashboard page of :func:`figures`."""
    serving = data["serving"]
    traffic_rows = data["traffic"]
    status_class = "ok" if serving.get("status") == "ready" else "bad"
    last = data["monitor"][-1] if data["monitor"] else None
    dropped = [d for d in data["capture"]["dropped"] if d["rows"] > 0]
    sections = [
        f"""<section><h2>What serves</h2>
<p>status <b class="{status_class}">{_fmt(serving.get("status"))}</b> &middot; champion
<b>v{_fmt(serving.get("champion"))}</b> &middot; challenger
<b>{"v" + _fmt(serving.get("challenger")) if serving.get("challenger") else "none"}</b>
&middot; mode {_fmt(serving.get("mode"))}</p>
<p>canary weight</p><p class="big">{_fmt(serving.get("canary_weight"))} %</p>
{_registry_error(serving)}</section>""",
        f"""<section><h2>Last monitor window</h2>{_last_window(last)}</section>""",
        f"""<section><h2>Requests by version and variant</h2>{
            _bars([(f"v{r['model_version']} {r['variant']}", r["requests"]) for r in traffic_rows])
        }</section>""",
        f"""<section><h2>Errors and latency by version and variant</h2>{
            _table(
                ["version", "variant", "requests", "errors", "error %", "p50 ms", "p95 ms"],
                [
                    [
                        f"v{_fmt(r['model_version'])}",
                        _fmt(r["variant"]),
                        str(r["requests"]),
                        str(r["errors"]),
                        f"{100 * r['error_rate']:.2f}",
                        _fmt(r["p50_ms"], 2),
                        _fmt(r["p95_ms"], 2),
                    ]
                    for r in traffic_rows
                ],
                {2, 3, 4, 5, 6},
            )
        }</section>""",
        f"""<section class="wide"><h2>Drift share and ROC AUC per monitor window</h2>{
            _lines(data["monitor"], data["drift_share_threshold"])
        }</section>""",
        f"""<section><h2>Capture</h2>{
            _table(
                ["kind", "rows written"],
                [[E(k), str(v)] for k, v in sorted(data["capture"]["written"].items())],
                {1},
            )
        }<h2>Capture drops</h2>{
            _bars(
                [(f"{d['kind']} {d['reason']}", d["rows"]) for d in dropped],
                " rows",
            )
            if dropped
            else '<p class="ok">no rows dropped</p>'
        }</section>""",
        f"""<section><h2>Retrains by state</h2>{
            _bars(sorted(data["retrains"].items()))
        }<h2>Decisions</h2>{
            _bars(
                [(f"monitor {k}", v) for k, v in sorted(data["verdicts"].items())]
                + [(f"rollout {k}", v) for k, v in sorted(data["rollout_decisions"].items())]
            )
        }</section>""",
        f"""<section class="wide"><h2>Recent decisions</h2>{
            _table(
                ["when (UTC)", "kind", "versions", "decision", "reason"],
                [
                    [
                        _fmt(r["created"])[:19].replace("T", " "),
                        _fmt(r["kind"]),
                        _fmt(_versions(r)),
                        _fmt(r["decision"]),
                        _fmt(r["reason"]),
                    ]
                    for r in data["recent_decisions"]
                ],
            )
        }</section>""",
        f"""<section class="wide"><h2>Recent retrains</h2>{
            _table(
                ["requested (UTC)", "window", "state", "reason", "outcome"],
                [
                    [
                        _fmt(r["requested_at"])[:19].replace("T", " "),
                        _fmt(r["window"]),
                        _fmt(r["status"]),
                        _fmt(r["reason"]),
                        _outcome(r["outcome"]),
                    ]
                    for r in data["recent_retrains"]
                ],
            )
        }</section>""",
    ]
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="30"><title>driftloop dashboard - {E(data["model"])}</title>
<style>{STYLE}</style></head><body><header><h1>driftloop &middot; {E(data["model"])}</h1>
<p>this replica's traffic since it started, and the loop's decisions &middot; generated
{E(data["generated"])} &middot; refreshes every 30 s &middot;
<a style="color:#93c5fd" href="/metrics">/metrics</a> &middot;
<a style="color:#93c5fd" href="/docs">/docs</a></p></header>
<main>{"".join(sections)}</main></body></html>"""


def _versions(record: dict[str, Any]) -> str:
    versions = record.get("versions")
    if isinstance(versions, dict):
        return ", ".join(f"{k} v{v}" for k, v in versions.items() if v)
    return f"v{record.get('version')}" if record.get("version") else ""


def _registry_error(serving: dict[str, Any]) -> str:
    error = serving.get("last_error")
    return f'<p class="bad">registry unreachable: {_fmt(error)}</p>' if error else ""


def _outcome(outcome: Any) -> str:
    """A retrain's outcome in one line (``error=...``, ``version=...``, ``guard=...``)."""
    if not isinstance(outcome, dict) or not outcome:
        return ""
    text = ", ".join(f"{k}={v}" for k, v in outcome.items() if not isinstance(v, dict | list))
    return E(text[:300])


def _last_window(last: dict[str, Any] | None) -> str:
    """The last monitor verdict as a two-column table (fits a narrow card)."""
    if last is None:
        return '<p class="muted">no monitor window judged yet</p>'
    decided = "bad" if last["decision"] == "retrain" else "ok"
    rows = [
        ["window", f"{_fmt(last['start'])[:16]} .. {_fmt(last['end'])[:16]}".replace("T", " ")],
        ["version judged", f"v{_fmt(last['version'])}"],
        ["verdict", f'<b class="{decided}">{_fmt(last["decision"])}</b>'],
        ["drift share", _fmt(last["drift_share"], 2)],
        ["estimated ROC AUC", _fmt(last["estimated_auc"])],
        ["observed ROC AUC", _fmt(last["observed_auc"])],
        ["KPI (AUC to keep)", _fmt(last["kpi_auc"])],
    ]
    return _table(["", ""], rows) + f'<p class="muted">{_fmt(last["reason"])}</p>'
