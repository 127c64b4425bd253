"""Captured explanations and attribution drift: what the model leans on, window against window.

Serving explains a sample of its traffic (``settings.serving.explain_sample_rate``, off the
request path, :mod:`serving.explain`) and appends the attributions to::

    {state}/capture/explanations/date=YYYY-MM-DD/part-*.parquet   one row per explained row

with the columns of :func:`explanation_schema`: the prediction's ids, ``ts`` (UTC), model name
and version, variant, ``routed``, ``late_probability``, ``baseline_probability``,
``convergence_delta`` and one ``attr_<feature>`` column per model input (integrated gradients of
the served probability, :mod:`driftloop.training.explain`).

Attribution drift of a window compares, per feature, the mean |attribution| of the version's
explained rows in the window with its *reference*: the version's first explained window (from its
first captured explanation, as long as the judged window, ending at the judged window's start at
the latest). A complete first window is frozen into
``{state}/monitoring/attribution/<model>-v<version>.json`` on first use, so the reference of a
version never changes afterwards (retention may delete its capture files). A feature's
attribution drifted when its share of the total mean |attribution| moved by at least
``settings.monitoring.attribution_shift``: the model's reasons changed even where the inputs'
distributions test as stable. It is reported beside feature drift, not acted on.
"""

from __future__ import annotations

import html
import json
import logging
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from driftloop.data.capture import kind_dir
from driftloop.settings import Settings, get_settings

logger = logging.getLogger(__name__)

EXPLANATIONS = "explanations"
#: Prefix of the attribution columns: ``attr_carrier``, ``attr_distance``, ...
ATTR_PREFIX = "attr_"
_TS = pa.timestamp("us", tz="UTC")
#: Columns of an explained row before its attributions.
META_FIELDS: list[tuple[str, pa.DataType]] = [
    ("prediction_id", pa.string()),
    ("request_id", pa.string()),
    ("row", pa.int32()),
    ("ts", _TS),
    ("model_name", pa.string()),
    ("model_version", pa.string()),
    ("variant", pa.string()),
    ("routed", pa.bool_()),
    ("late_probability", pa.float64()),
    ("baseline_probability", pa.float64()),
    ("convergence_delta", pa.float64()),
]
#: Files of the attribution reference frozen per version.
REFERENCE_DIR = "attribution"


def explanation_schema(features: list[str]) -> pa.Schema:
    """The file schema of explained rows of a model with inputs ``features``."""
    attrs = [(f"{ATTR_PREFIX}{f}", pa.float64()) for f in features]
    return pa.schema([*META_FIELDS, *attrs])


def explanation_table(
    meta: dict[str, Any],
    features: list[str],
    values: np.ndarray,
    probability: np.ndarray,
    baseline_probability: float,
    delta: np.ndarray,
) -> pa.Table:
    """Explained rows of one request as a table: ``meta`` holds request_id, ts, model_name,
    model_version, variant and routed (one value each); ``values[i, j]`` is row i's attribution
    to ``features[j]``."""
    n = int(values.shape[0])
    request_id = str(meta["request_id"])
    columns: dict[str, Any] = {
        "prediction_id": [f"{request_id}:{i}" for i in range(n)],
        "request_id": [request_id] * n,
        "row": np.arange(n, dtype=np.int32),
        "ts": [meta["ts"]] * n,
        "model_name": [str(meta["model_name"])] * n,
        "model_version": [str(meta["model_version"])] * n,
        "variant": [str(meta["variant"])] * n,
        "routed": [bool(meta["routed"])] * n,
        "late_probability": np.asarray(probability, dtype=np.float64),
        "baseline_probability": np.full(n, float(baseline_probability)),
        "convergence_delta": np.asarray(delta, dtype=np.float64),
    }
    for j, feature in enumerate(features):
        columns[f"{ATTR_PREFIX}{feature}"] = np.asarray(values[:, j], dtype=np.float64)
    schema = explanation_schema(features)
    return pa.table([pa.array(columns[f.name], f.type) for f in schema], schema=schema)


def explanations_dir(settings: Settings | None = None) -> Path:
    return kind_dir(EXPLANATIONS, settings)


def _utc(value: datetime | str | pd.Timestamp) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _days(root: Path) -> list[tuple[date, Path]]:
    out = []
    for part in sorted(root.glob("date=*")):
        try:
            out.append((date.fromisoformat(part.name.removeprefix("date=")), part))
        except ValueError:
            continue
    return out


def read_explanations(
    settings: Settings | None = None,
    start: datetime | str | pd.Timestamp | None = None,
    end: datetime | str | pd.Timestamp | None = None,
    model_version: str | None = None,
    model_name: str | None = None,
) -> pd.DataFrame:
    """Explained rows captured in [start, end] (UTC; open ends allowed), of one version when
    given; files of versions with other inputs read side by side (missing columns: NaN)."""
    settings = settings or get_settings()
    lo = _utc(start) if start is not None else None
    hi = _utc(end) if end is not None else None
    frames = []
    for day, part in _days(explanations_dir(settings)):
        if (lo is not None and day < lo.date()) or (hi is not None and day > hi.date()):
            continue
        for path in sorted(part.glob("part-*.parquet")):
            frame = pq.read_table(path).to_pandas()
            if model_version is not None:
                frame = frame[frame["model_version"] == str(model_version)]
            if model_name is not None:
                frame = frame[frame["model_name"] == model_name]
            if lo is not None:
                frame = frame[frame["ts"] >= lo]
            if hi is not None:
                frame = frame[frame["ts"] <= hi]
            if not frame.empty:
                frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=[name for name, _ in META_FIELDS])
    return pd.concat(frames, ignore_index=True).sort_values("ts", kind="stable")


def attribution_columns(frame: pd.DataFrame) -> list[str]:
    """The features ``frame`` holds attributions for, in file order."""
    return [c.removeprefix(ATTR_PREFIX) for c in frame.columns if c.startswith(ATTR_PREFIX)]


def mean_abs_attribution(frame: pd.DataFrame) -> dict[str, float]:
    """Mean |attribution| per feature of the explained rows in ``frame``."""
    return {
        f: float(np.nanmean(np.abs(frame[f"{ATTR_PREFIX}{f}"].to_numpy(dtype=np.float64))))
        for f in attribution_columns(frame)
    }


@dataclass(frozen=True)
class AttributionReference:
    """Mean |attribution| per feature of a version's first explained window."""

    model_name: str
    model_version: str
    start: str
    end: str
    rows: int
    mean_abs: dict[str, float]
    frozen: bool = False


@dataclass
class AttributionDrift:
    """Attribution drift of one window against the version's reference (see the module)."""

    model_name: str
    model_version: str
    start: str
    end: str
    status: str  # "ok", "drifted", "insufficient_data", "no_reference"
    reason: str
    rows: int = 0
    threshold: float = 0.0
    reference: AttributionReference | None = None
    #: one row per feature, largest share change first: feature, reference_mean_abs,
    #: current_mean_abs, reference_share, current_share, share_change, drifted
    table: list[dict[str, Any]] = field(default_factory=list)
    max_abs_delta: float | None = None

    @property
    def drifted_features(self) -> list[str]:
        return [r["feature"] for r in self.table if r["drifted"]]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["drifted_features"] = self.drifted_features
        return out


def _reference_path(settings: Settings, name: str, version: str) -> Path:
    return settings.state / "monitoring" / REFERENCE_DIR / f"{name}-v{version}.json"


def _first_explained(settings: Settings, name: str, version: str) -> pd.Timestamp | None:
    """When the version's first captured explanation was made (None: never explained)."""
    for _, part in _days(explanations_dir(settings)):
        first: pd.Timestamp | None = None
        for path in sorted(part.glob("part-*.parquet")):
            table = pq.read_table(path, columns=["ts", "model_name", "model_version"])
            frame = table.to_pandas()
            frame = frame[(frame["model_version"] == version) & (frame["model_name"] == name)]
            if not frame.empty:
                ts = pd.Timestamp(frame["ts"].min())
                first = ts if first is None or ts < first else first
        if first is not None:
            return first
    return None


def attribution_reference(
    settings: Settings,
    name: str,
    version: str,
    window: pd.Timedelta,
    before: pd.Timestamp,
) -> AttributionReference | None:
    """The version's reference: the frozen one, else its first explained window of length
    ``window`` (ending at ``before`` at the latest), frozen when complete and large enough;
    None when nothing of the version was explained before ``before``."""
    path = _reference_path(settings, name, version)
    if path.exists():
        return AttributionReference(**json.loads(path.read_text()))
    first = _first_explained(settings, name, version)
    if first is None or first >= before:
        return None
    end = min(first + window, before)
    frame = read_explanations(settings, first, end, version, name)
    frame = frame[frame["ts"] < end] if end == before else frame
    if "routed" in frame.columns:
        frame = frame[frame["routed"].astype(bool)]
    if frame.empty:
        return None
    complete = first + window <= before
    ref = AttributionReference(
        model_name=name,
        model_version=version,
        start=first.isoformat(),
        end=end.isoformat(),
        rows=len(frame),
        mean_abs=mean_abs_attribution(frame),
        frozen=complete and len(frame) >= settings.monitoring.attribution_min_rows,
    )
    if ref.frozen:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(ref), indent=2))
        logger.info(
            "attribution reference of %s v%s frozen: %d rows of %s..%s",
            name,
            version,
            ref.rows,
            ref.start,
            ref.end,
        )
    return ref


def _shares(mean_abs: dict[str, float], features: list[str]) -> dict[str, float]:
    total = sum(mean_abs.get(f, 0.0) for f in features)
    return {f: (mean_abs.get(f, 0.0) / total if total > 0 else 0.0) for f in features}


def attribution_drift(
    settings: Settings | None,
    model_name: str,
    model_version: str,
    start: datetime | str | pd.Timestamp,
    end: datetime | str | pd.Timestamp,
) -> AttributionDrift:
    """Attribution drift of the version's routed explained rows in [start, end] against its
    reference (see the module); a status, never an exception, when either side is too small."""
    settings = settings or get_settings()
    lo, hi = _utc(start), _utc(end)
    version = str(model_version)
    threshold = settings.monitoring.attribution_shift
    min_rows = settings.monitoring.attribution_min_rows
    base = {
        "model_name": model_name,
        "model_version": version,
        "start": lo.isoformat(),
        "end": hi.isoformat(),
        "threshold": threshold,
    }
    current = read_explanations(settings, lo, hi, version, model_name)
    if "routed" in current.columns and not current.empty:
        current = current[current["routed"].astype(bool)]
    reference = attribution_reference(settings, model_name, version, hi - lo, lo)
    if reference is None:
        return AttributionDrift(
            status="no_reference",
            reason=f"no explanation of version {version} was captured before {lo.isoformat()} "
            "(the first explained window becomes the reference)",
            rows=len(current),
            **base,
        )
    if len(current) < min_rows or reference.rows < min_rows:
        return AttributionDrift(
            status="insufficient_data",
            reason=f"{len(current)} explained rows in the window, {reference.rows} in the "
            f"reference; {min_rows} needed in both (settings.monitoring.attribution_min_rows)",
            rows=len(current),
            reference=reference,
            **base,
        )
    now = mean_abs_attribution(current)
    features = [f for f in reference.mean_abs if f in now]
    ref_share, cur_share = _shares(reference.mean_abs, features), _shares(now, features)
    table = [
        {
            "feature": f,
            "reference_mean_abs": reference.mean_abs[f],
            "current_mean_abs": now[f],
            "reference_share": ref_share[f],
            "current_share": cur_share[f],
            "share_change": cur_share[f] - ref_share[f],
            "drifted": abs(cur_share[f] - ref_share[f]) >= threshold,
        }
        for f in features
    ]
    table.sort(key=lambda r: -abs(float(cast(float, r["share_change"]))))
    drifted = [r["feature"] for r in table if r["drifted"]]
    if drifted:
        status = "drifted"
        reason = (
            f"attribution share of {drifted} moved by >= {threshold:.2f} against the first "
            f"explained window ({reference.start}..{reference.end})"
        )
    else:
        top = table[0]
        status = "ok"
        reason = (
            f"largest attribution share change {top['share_change']:+.3f} ({top['feature']}) "
            f"< {threshold:.2f}"
        )
    deltas = current["convergence_delta"].to_numpy(dtype=np.float64)
    return AttributionDrift(
        status=status,
        reason=reason,
        rows=len(current),
        reference=reference,
        table=table,
        max_abs_delta=float(np.nanmax(np.abs(deltas))) if len(deltas) else None,
        **base,
    )


def render_html(drift: AttributionDrift) -> str:
    """A self-contained page with the attribution drift table (no external assets)."""
    e = html.escape
    ref = drift.reference
    rows = "".join(
        "<tr{cls}><td>{f}</td><td>{rm:.4f}</td><td>{cm:.4f}</td><td>{rs:.1%}</td>"
        "<td>{cs:.1%}</td><td>{ch:+.1%}</td><td>{d}</td></tr>".format(
            cls=' class="drifted"' if r["drifted"] else "",
            f=e(r["feature"]),
            rm=r["reference_mean_abs"],
            cm=r["current_mean_abs"],
            rs=r["reference_share"],
            cs=r["current_share"],
            ch=r["share_change"],
            d="yes" if r["drifted"] else "",
        )
        for r in drift.table
    )
    reference = (
        f"{e(ref.start)} .. {e(ref.end)} ({ref.rows} rows{', frozen' if ref.frozen else ''})"
        if ref is not None
        else "none yet"
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>Attribution drift: {e(drift.model_name)} v{e(drift.model_version)}</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
        "td:first-child,th:first-child{text-align:left}tr.drifted{background:#fde2e1}</style>"
        "</head><body>"
        f"<h1>Attribution drift: {e(drift.model_name)} version {e(drift.model_version)}</h1>"
        f"<p><b>{e(drift.status)}</b>: {e(drift.reason)}</p>"
        f"<p>Window {e(drift.start)} .. {e(drift.end)}: {drift.rows} explained rows. "
        f"Reference (first explained window): {reference}. A feature drifted when its share "
        f"of the mean |attribution| moved by at least {drift.threshold:.0%}.</p>"
        "<p>Attributions: integrated gradients of the served probability against the version's "
        "baseline (training means, mean category embedding)"
        + (
            f"; largest |convergence delta| in the window {drift.max_abs_delta:.2g}"
            if drift.max_abs_delta is not None
            else ""
        )
        + ".</p><table><tr><th>feature</th><th>mean |attr| reference</th>"
        "<th>mean |attr| window</th><th>share reference</th><th>share window</th>"
        "<th>change</th><th>drifted</th></tr>"
        f"{rows}</table></body></html>"
    )


def save_attribution_report(drift: AttributionDrift, folder: Path) -> list[Path]:
    """``attribution.json`` and ``attribution.html`` into a drift report's folder (logged to
    MLflow with the report's other files)."""
    folder.mkdir(parents=True, exist_ok=True)
    as_json = folder / "attribution.json"
    as_json.write_text(json.dumps(drift.to_dict(), indent=2, default=str))
    page = folder / "attribution.html"
    page.write_text(render_html(drift))
    return [as_json, page]


__all__ = [
    "ATTR_PREFIX",
    "EXPLANATIONS",
    "AttributionDrift",
    "AttributionReference",
    "attribution_drift",
    "explanation_schema",
    "explanation_table",
    "read_explanations",
    "render_html",
    "save_attribution_report",
]
