"""One monitoring run, without Prefect: captured traffic of a window vs the judged version's
training reference -> Evidently report -> verdict -> report on disk and in MLflow.

The judged version is the champion unless one is named. Its reference is the artifact
``reference/reference.parquet`` of its training run (a holdout sample with predictions), cached
under ``{state}/monitoring/references/``. The report is logged into the version's run under
``monitoring/<report id>/`` and the version is tagged with the latest drift summary.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

from driftloop.data.capture import read_predictions
from driftloop.errors import NotFoundError
from driftloop.monitoring.adapter import compute_drift
from driftloop.monitoring.attribution import attribution_drift, save_attribution_report
from driftloop.monitoring.judge import DriftVerdict, JudgeInputs, judge
from driftloop.monitoring.performance import (
    Interval,
    calibration_gap,
    estimate_roc_auc,
    observed_roc_auc,
    reconcile,
)
from driftloop.monitoring.reports import ReportInfo, drifted_text, save_report, stamp_headers
from driftloop.months import parse_month, shift_month
from driftloop.registry.client import (
    CHAMPION,
    download_run_artifact,
    get_alias,
    get_version,
    log_run_files,
    log_run_metrics,
    set_version_tags,
)
from driftloop.schema import EVENT_TIMESTAMP, LABEL, LOCAL_TZ, OUTPUT_PROBABILITY
from driftloop.settings import MonitoringSettings, Settings, get_settings
from driftloop.stats import finite_or_none, roc_auc

logger = logging.getLogger(__name__)

REFERENCE_ARTIFACT = "reference/reference.parquet"
IMPORTANCE_ARTIFACT = "explain/permutation_importance.json"
#: Version tags written by each monitoring run.
TAG_DRIFT_LATEST = "driftloop.drift.latest"
TAG_DRIFT_SHARE = "driftloop.drift.share"
TAG_DRIFT_STATUS = "driftloop.drift.status"
TAG_DRIFT_REPORT = "driftloop.drift.report"
#: A month counts as part of a window when it holds at least this share of the rows.
MONTH_MIN_SHARE = 0.05


@dataclass
class MonitorResult:
    """What one monitoring run found and where it put the report."""

    model_name: str
    model_version: str
    start: str
    end: str
    rows: int
    months: list[str]
    verdict: DriftVerdict
    report: ReportInfo | None = None
    drift_share: float | None = None
    live_auc: float | None = None
    retrain_window: dict[str, str] | None = None
    mlflow_logged: bool = False
    #: what the verdict was computed from (stored in the decision record)
    inputs: JudgeInputs | None = None
    #: label-free estimate vs realised metric, when labels arrived
    reconciliation: dict[str, Any] | None = None
    #: rows of the version in the window marked synthetic (load tests, probes), left out of
    #: ``rows``, and their count per mark: a mark cannot hide traffic without it showing here
    synthetic_rows: int = 0
    synthetic_marks: dict[str, int] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    #: what the model leans on, against its first explained window
    #: (:mod:`driftloop.monitoring.attribution`; None when not computed)
    attribution_drift: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "model_version": self.model_version,
            "start": self.start,
            "end": self.end,
            "rows": self.rows,
            "months": self.months,
            "verdict": self.verdict.to_dict(),
            "report": self.report.header() if self.report else None,
            "drift_share": self.drift_share,
            "live_auc": self.live_auc,
            "retrain_window": self.retrain_window,
            "mlflow_logged": self.mlflow_logged,
            "inputs": self.inputs.to_dict() if self.inputs is not None else None,
            "reconciliation": self.reconciliation,
            "synthetic_rows": self.synthetic_rows,
            "synthetic_marks": self.synthetic_marks,
            "attribution_drift": self.attribution_drift,
        }


def retrain_window(drifted_month: str, settings: Settings | None = None) -> dict[str, str]:
    """The training window a drift in ``drifted_month`` asks for: the
    ``retrain_window_months`` months before it, holding the drifted month out for the gate
    (``train_and_register`` evaluates on the month after the window)."""
    settings = settings or get_settings()
    holdout = parse_month(drifted_month)
    end = shift_month(holdout, -1)
    start = shift_month(holdout, -settings.monitoring.retrain_window_months)
    first = parse_month(settings.data.first_month)
    start = max(start, first)
    if end < start:
        raise NotFoundError(
            f"no month before {holdout} to train on (data starts {settings.data.first_month})"
        )
    return {"start_month": start, "end_month": end, "holdout_month": holdout}


def window_months(frame: pd.DataFrame) -> list[str]:
    """Data months (New York time of the scheduled departure, else of the prediction) holding
    at least MONTH_MIN_SHARE of the window's rows."""
    if frame.empty:
        return []
    source = frame[EVENT_TIMESTAMP] if EVENT_TIMESTAMP in frame.columns else None
    if source is None or source.isna().all():
        source = frame["ts"]
    ts = pd.to_datetime(source, utc=True).dropna().dt.tz_convert(LOCAL_TZ)
    counts = ts.dt.strftime("%Y-%m").value_counts(normalize=True)
    return sorted(m for m, share in counts.items() if share >= MONTH_MIN_SHARE)


def _cached_artifact(run_id: str, artifact: str, kind: str, settings: Settings) -> Path:
    """Run ``run_id``'s ``artifact``, downloaded once into ``{state}/monitoring/{kind}/``
    (a training run's artifacts never change); NotFoundError when the run has none."""
    cache = settings.state / "monitoring" / kind / f"{run_id}{Path(artifact).suffix}"
    if not cache.exists():
        cache.parent.mkdir(parents=True, exist_ok=True)
        download_run_artifact(run_id, artifact, cache.parent, settings).replace(cache)
    return cache


def load_reference(run_id: str, settings: Settings | None = None) -> pd.DataFrame:
    """The reference frame logged by training run ``run_id`` (downloaded once, then cached)."""
    settings = settings or get_settings()
    try:
        path = _cached_artifact(run_id, REFERENCE_ARTIFACT, "references", settings)
    except NotFoundError as exc:
        raise NotFoundError(f"{exc}; retrain the version to log its monitoring reference") from None
    return pd.read_parquet(path)


def load_importance(run_id: str, settings: Settings | None = None) -> dict[str, float]:
    """Permutation importance (feature -> mean ROC AUC drop) logged by training run ``run_id``
    (downloaded once, then cached); empty when the run has none."""
    settings = settings or get_settings()
    try:
        path = _cached_artifact(run_id, IMPORTANCE_ARTIFACT, "importance", settings)
    except NotFoundError:
        logger.warning("run %s logged no permutation importance", run_id)
        return {}
    rows = json.loads(path.read_text())
    return {str(r["feature"]): float(r["importance_mean"]) for r in rows}


def judge_inputs(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    summary: Any,
    importance: dict[str, float],
    settings: MonitoringSettings,
) -> tuple[JudgeInputs, dict[str, Any] | None]:
    """The verdict's inputs for a window: drift summary, importance, the version's holdout AUC,
    the label-free (CBPE) estimate of the window's AUC and, on labelled rows, the observed AUC and
    calibration gap; plus the reconciliation of estimate and observation (None without labels)."""
    confidence = 1.0 - settings.alpha
    p = current[OUTPUT_PROBABILITY].to_numpy(dtype=float)
    estimated = estimate_roc_auc(
        p, confidence, simulations=settings.estimate_simulations, seed=len(p)
    )
    observed: Interval | None = None
    gap: Interval | None = None
    labeled = current[current[LABEL].notna()] if LABEL in current.columns else current.iloc[0:0]
    if not labeled.empty:
        y = labeled[LABEL].to_numpy(dtype=float)
        lp = labeled[OUTPUT_PROBABILITY].to_numpy(dtype=float)
        observed = observed_roc_auc(y, lp, confidence)
        gap = calibration_gap(y, lp, confidence)
    ref_auc = ref_estimated = None
    if OUTPUT_PROBABILITY in reference.columns:
        ref_p = reference[OUTPUT_PROBABILITY].to_numpy(dtype=float)
        ref_estimate = estimate_roc_auc(
            ref_p, confidence, simulations=settings.estimate_simulations, seed=len(ref_p)
        )
        ref_estimated = ref_estimate.estimate if ref_estimate is not None else None
        if LABEL in reference.columns:
            ref_auc = finite_or_none(roc_auc(reference[LABEL], reference[OUTPUT_PROBABILITY]))
    pred = summary.prediction_drift
    inputs = JudgeInputs(
        rows=len(current),
        labeled=len(labeled),
        drift_share=summary.drift_share,
        drifted_columns=list(summary.drifted_columns),
        prediction_drift=asdict(pred) if pred is not None else None,
        importance=importance,
        reference_auc=ref_auc,
        reference_estimated_auc=ref_estimated,
        observed_auc=observed.to_dict() if observed is not None else None,
        estimated_auc=estimated.to_dict() if estimated is not None else None,
        calibration_gap=gap.to_dict() if gap is not None else None,
    )
    if estimated is None or observed is None:
        return inputs, None
    # the estimator's error on the rows whose labels it is compared with (labels may cover
    # only part of the window)
    lp = labeled[OUTPUT_PROBABILITY].to_numpy(dtype=float)
    same_rows = estimate_roc_auc(
        lp, confidence, simulations=settings.estimate_simulations, seed=len(lp)
    )
    if same_rows is None:
        return inputs, None
    estimated = same_rows
    rec = reconcile(estimated, observed)
    return inputs, {
        **rec,
        "estimated": estimated.estimate,
        "observed": observed.estimate,
        "estimated_interval": rec["estimated"],
        "observed_interval": rec["observed"],
    }


def current_frame(settings: Settings, start: datetime, end: datetime, version: str) -> pd.DataFrame:
    """Served, successful, routed predictions of ``version`` captured in [start, end], with
    labels. Requests pinned to a version or carrying the caller's routing key (``routed`` false)
    are served but not judged, as in the canary: a caller cannot start a retrain with traffic it
    aimed at one version. Rows from before the ``routed`` column (null) are judged. Synthetic
    rows (load tests, probes) are not judged either (see :func:`window_traffic`)."""
    return window_traffic(settings, start, end, version)[0]


def window_traffic(
    settings: Settings, start: datetime, end: datetime, version: str
) -> tuple[pd.DataFrame, dict[str, int]]:
    """(:func:`current_frame`, rows of ``version`` in the window marked synthetic per mark).
    A 76k-row load test of identical rows would otherwise read as a drifted window."""
    df = read_predictions(
        settings,
        start=start,
        end=end,
        model_version=version,
        with_labels=True,
        include_synthetic=True,
    )
    if df.empty:
        return df, {}
    synthetic = df["synthetic"].notna()
    marks = {str(k): int(v) for k, v in df.loc[synthetic, "synthetic"].value_counts().items()}
    return _judged_rows(df[~synthetic]), marks


def _judged_rows(df: pd.DataFrame) -> pd.DataFrame:
    if df.empty:
        return df.reset_index(drop=True)
    ok = df["error"].isna() & df[OUTPUT_PROBABILITY].notna()
    if "served" in df.columns:
        ok &= df["served"].astype(bool)
    if "routed" in df.columns:
        ok &= df["routed"].astype("boolean").fillna(True).astype(bool)
    return df[ok].reset_index(drop=True)


def _judged_version(settings: Settings, model_version: str | None) -> Any:
    if model_version is not None:
        return get_version(str(model_version), settings)
    info = get_alias(CHAMPION, settings)
    if info is None:
        raise NotFoundError(
            f"model {settings.mlflow.registered_model} has no champion to monitor: "
            "train one first (`driftloop train` or `driftloop demo`)"
        )
    return info


def log_to_mlflow(result: MonitorResult, run_id: str | None, settings: Settings) -> bool:
    """Report files into the version's run under monitoring/<id>/, metrics on the run, and the
    latest drift summary as version tags. Best effort: False (and a warning) on failure."""
    report = result.report
    if report is None:
        return False
    try:
        if run_id:
            stamp_headers(report)  # pages added after save_report (attribution.html) too
            files = sorted(f for f in report.folder.iterdir() if f.is_file())
            log_run_files(run_id, files, f"monitoring/{report.id}", settings)
            metrics = {"monitor.drift_share": report.summary.drift_share}
            if result.live_auc is not None:
                metrics["monitor.live_roc_auc"] = result.live_auc
            estimated = result.inputs.estimated_auc if result.inputs is not None else None
            if estimated is not None:
                metrics["monitor.estimated_roc_auc"] = estimated["estimate"]
            if result.reconciliation is not None:
                metrics["monitor.observed_roc_auc"] = result.reconciliation["observed"]
                metrics["monitor.estimate_error_roc_auc"] = result.reconciliation["error"]
            step = int(datetime.now(UTC).timestamp())
            log_run_metrics(run_id, metrics, step, settings)
        latest = {
            "report": report.id,
            "created": report.created,
            "status": result.verdict.status,
            "drift_share": round(report.summary.drift_share, 4),
            "drifted": report.summary.drifted_columns,  # all: the count must match the list
            "drifted_text": drifted_text(report.summary),
            "url": report.url,
            "live_auc": result.live_auc,
            "window": [result.start, result.end],
            "months": result.months,
        }
        set_version_tags(
            result.model_version,
            {
                TAG_DRIFT_LATEST: json.dumps(latest, default=str)[:4000],
                TAG_DRIFT_SHARE: f"{report.summary.drift_share:.4f}",
                TAG_DRIFT_STATUS: result.verdict.status,
                TAG_DRIFT_REPORT: report.url,  # the MLflow UI page, not a local path
            },
            settings,
        )
        return True
    except Exception as exc:  # the report is on disk; MLflow is the second home
        logger.warning("could not log drift report %s to MLflow: %s", report.id, exc)
        return False


def run_monitor(
    settings: Settings | None = None,
    start: datetime | str | None = None,
    end: datetime | str | None = None,
    model_version: str | None = None,
    log_mlflow: bool = True,
) -> MonitorResult:
    """Judge the captured traffic of [start, end] (default: the last
    ``settings.monitoring.window_minutes``) against the judged version's reference."""
    settings = settings or get_settings()
    hi = pd.Timestamp(end or datetime.now(UTC))
    hi = hi.tz_localize("UTC") if hi.tzinfo is None else hi.tz_convert("UTC")
    if start is None:
        lo = hi - timedelta(minutes=settings.monitoring.window_minutes)
    else:
        lo = pd.Timestamp(start)
        lo = lo.tz_localize("UTC") if lo.tzinfo is None else lo.tz_convert("UTC")
    info = _judged_version(settings, model_version)
    current, marks = window_traffic(settings, lo.to_pydatetime(), hi.to_pydatetime(), info.version)
    months = window_months(current)
    base = {
        "model_name": info.name,
        "model_version": str(info.version),
        "start": lo.isoformat(),
        "end": hi.isoformat(),
        "rows": len(current),
        "months": months,
        "synthetic_rows": sum(marks.values()),
        "synthetic_marks": marks,
    }
    if marks:
        logger.info(
            "monitor v%s: %d synthetic rows left out of the window (%s)",
            info.version,
            sum(marks.values()),
            ", ".join(f"{k}: {v}" for k, v in sorted(marks.items())),
        )
    if len(current) < settings.monitoring.min_rows:
        left_out = f" ({sum(marks.values())} synthetic rows left out)" if marks else ""
        verdict = DriftVerdict(
            status="insufficient_data",
            retrain=False,
            reasons=[
                f"{len(current)} captured rows of version {info.version} in the window "
                f"< min_rows {settings.monitoring.min_rows}{left_out}"
            ],
        )
        logger.info("monitor: %s", verdict.reason)
        return MonitorResult(verdict=verdict, **base)
    if not info.run_id:
        raise NotFoundError(f"version {info.version} has no training run (no reference)")
    reference = load_reference(info.run_id, settings)
    report = compute_drift(reference, current, settings.monitoring)
    inputs, reconciliation = judge_inputs(
        reference,
        current,
        report.summary,
        load_importance(info.run_id, settings),
        settings.monitoring,
    )
    verdict = judge(inputs, settings.monitoring, settings.kpi)
    window = {"start": base["start"], "end": base["end"], "months": months}
    saved = save_report(
        report, verdict, info.name, str(info.version), window, settings, run_id=info.run_id
    )
    result = MonitorResult(
        verdict=verdict,
        report=saved,
        drift_share=report.summary.drift_share,
        live_auc=report.summary.quality.get("roc_auc"),
        inputs=inputs,
        reconciliation=reconciliation,
        **base,
    )
    if verdict.retrain and months:
        try:
            result.retrain_window = retrain_window(months[-1], settings)
        except NotFoundError as exc:
            logger.warning("drift found but no retrain window: %s", exc)
    try:  # beside feature drift, into the report folder (logged to MLflow with it)
        attribution = attribution_drift(settings, info.name, str(info.version), lo, hi)
        save_attribution_report(attribution, saved.folder)
        result.attribution_drift = attribution.to_dict()
    except (OSError, ValueError, KeyError) as exc:
        logger.warning("attribution drift of v%s not computed: %s", info.version, exc)
    if log_mlflow:
        result.mlflow_logged = log_to_mlflow(result, info.run_id, settings)
    logger.info("monitor v%s %s..%s: %s (%s)", info.version, lo, hi, verdict.status, verdict.reason)
    return result


__all__ = [
    "MonitorResult",
    "load_reference",
    "retrain_window",
    "run_monitor",
    "window_months",
]
