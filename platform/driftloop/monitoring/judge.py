"""Does a monitoring window call for a retrain? Performance against the KPI first, then drift on
the features that matter; plain drift share is reported, not acted on.

Inputs are one :class:`JudgeInputs` (stored in the window's decision record, so the verdict can
be recomputed: :func:`driftloop.loop.decisions.replay`). The KPIs (``min_auc``,
``max_auc_drop``, ``max_calibration_gap``) are ``settings.kpi`` (:class:`KpiSettings`, the one
declared place the gate and the rollout read too); the other thresholds ``settings.monitoring``.
Every verdict's ``numbers["kpi"]`` holds the KPI values it judged against.

- fewer than ``min_rows`` captured rows: ``insufficient_data`` (never an alarm);
- **performance** (``quality``): the KPI is ROC AUC of at least
  ``max(min_auc, reference AUC - max_auc_drop)`` (the reference is the version's own holdout).
  With ``min_labeled_rows`` labels the *observed* AUC is judged (DeLong interval), else the
  *estimated* one (CBPE from the scores, :mod:`driftloop.monitoring.performance`), against the
  same KPI built from the reference's *estimate* (the estimator's bias, e.g. from a calibration
  slope off 1, cancels). An alarm needs the whole ``1 - alpha`` interval below the KPI: "below
  the KPI by more than its uncertainty".
  With labels, the calibration gap ``|mean(p) - late rate|`` whose interval lies entirely above
  ``max_calibration_gap`` is an alarm too (a shifted late rate breaks the decision threshold);
- **drift on features that matter** (``drift``): the drifted features hold at least
  ``importance_drift_threshold`` of the version's permutation importance (ROC AUC drop when the
  feature is shuffled, clipped at 0);
- information only: the drift share (``drift_share_threshold``) and prediction drift. Seasonal
  weather drifts every month; acting on it would retrain every month.

Any alarm makes ``retrain`` true.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from driftloop.settings import KpiSettings, MonitoringSettings

Status = Literal["ok", "drift", "quality", "insufficient_data"]
#: Version of the rule, stored in every decision record.
RULE = "monitor-3"


@dataclass(frozen=True)
class DriftVerdict:
    """The decision on one monitoring window."""

    status: Status
    retrain: bool
    reasons: list[str] = field(default_factory=list)
    alarms: list[str] = field(default_factory=list)
    #: observations that are reported but do not call for a retrain
    info: list[str] = field(default_factory=list)
    #: the numbers the verdict compared (KPI, intervals, importance share)
    numbers: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons) or self.status


@dataclass(frozen=True)
class JudgeInputs:
    """Everything the verdict depends on (intervals as ``Interval.to_dict()`` of
    :mod:`driftloop.monitoring.performance`)."""

    rows: int
    labeled: int
    drift_share: float | None = None
    drifted_columns: list[str] = field(default_factory=list)
    prediction_drift: dict[str, Any] | None = None
    importance: dict[str, float] = field(default_factory=dict)
    reference_auc: float | None = None
    #: the label-free estimate on the reference rows: what an estimate is compared with
    reference_estimated_auc: float | None = None
    observed_auc: dict[str, Any] | None = None
    estimated_auc: dict[str, Any] | None = None
    calibration_gap: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JudgeInputs:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


def kpi_auc(reference_auc: float | None, settings: KpiSettings | MonitoringSettings) -> float:
    """The ROC AUC a version must keep: ``min_auc``, raised to its own holdout AUC minus
    ``max_auc_drop`` when that is known (``settings``: the KPIs; a MonitoringSettings holds
    them under the deprecated names)."""
    if reference_auc is None:
        return settings.min_auc
    return max(settings.min_auc, reference_auc - settings.max_auc_drop)


def importance_share(drifted: list[str], importance: dict[str, float]) -> float | None:
    """Share of the (non-negative) permutation importance held by the drifted features."""
    weights = {k: max(0.0, float(v)) for k, v in importance.items()}
    total = sum(weights.values())
    if total <= 0.0:
        return None
    return sum(weights.get(c, 0.0) for c in drifted) / total


def _interval_text(iv: dict[str, Any]) -> str:
    return f"{iv['estimate']:.3f} [{iv['low']:.3f}, {iv['high']:.3f}]"


def judge(
    inputs: JudgeInputs,
    settings: MonitoringSettings | None = None,
    kpis: KpiSettings | None = None,
) -> DriftVerdict:
    """Apply the monitoring rules (module docstring) to ``inputs`` with the KPIs ``kpis``
    (``settings.kpi``; None: the values ``settings`` holds under the deprecated names, as in
    decision records stored before the KPI section existed)."""
    settings = settings or MonitoringSettings()
    kpis = kpis or KpiSettings.from_sections(monitoring=settings)
    declared = {k: getattr(kpis, k) for k in ("min_auc", "max_auc_drop", "max_calibration_gap")}
    if inputs.rows < settings.min_rows:
        return DriftVerdict(
            status="insufficient_data",
            retrain=False,
            reasons=[f"{inputs.rows} captured rows < min_rows {settings.min_rows}"],
            numbers={"kpi": declared},
        )
    kpi = kpi_auc(inputs.reference_auc, kpis)
    numbers: dict[str, Any] = {
        "kpi_auc": kpi,
        "reference_auc": inputs.reference_auc,
        "kpi": declared,
    }
    alarms: list[str] = []
    reasons: list[str] = []
    info: list[str] = []
    kpi_text = f"KPI {kpi:.3f}" + (
        f" (holdout {inputs.reference_auc:.3f} - {kpis.max_auc_drop:g})"
        if inputs.reference_auc is not None and kpi > kpis.min_auc
        else ""
    )
    labeled = inputs.labeled >= settings.min_labeled_rows
    auc, source = (
        (inputs.observed_auc, "observed") if labeled else (inputs.estimated_auc, "estimated")
    )
    if auc is None and not labeled:
        auc, source = inputs.observed_auc, "observed"
    if auc is not None and source == "estimated" and inputs.reference_estimated_auc is not None:
        kpi = kpi_auc(inputs.reference_estimated_auc, kpis)
        numbers["kpi_auc_estimated"] = kpi
        kpi_text = (
            f"estimated KPI {kpi:.3f} (holdout estimate {inputs.reference_estimated_auc:.3f} - "
            f"{kpis.max_auc_drop:g})"
        )
    if auc is not None:
        numbers["auc_source"] = source
        text = f"{source} ROC AUC {_interval_text(auc)}"
        if auc["high"] < kpi:
            alarms.append("performance" if source == "observed" else "estimated_performance")
            reasons.append(f"{text} < {kpi_text}")
        else:
            info.append(f"{text} vs {kpi_text}: within")
    gap = inputs.calibration_gap
    if labeled and gap is not None:
        low = 0.0 if gap["low"] <= 0.0 <= gap["high"] else min(abs(gap["low"]), abs(gap["high"]))
        text = f"calibration gap (mean p - late rate) {_interval_text(gap)}"
        if low > kpis.max_calibration_gap:
            alarms.append("calibration")
            reasons.append(f"{text}: |gap| > {kpis.max_calibration_gap:g}")
        else:
            info.append(f"{text}: within ±{kpis.max_calibration_gap:g}")
    share = importance_share(inputs.drifted_columns, inputs.importance)
    numbers["importance_drift_share"] = share
    if share is not None:
        text = (
            f"drifted features hold {share:.0%} of the model's permutation importance "
            f"({', '.join(inputs.drifted_columns) or 'none'})"
        )
        if share >= settings.importance_drift_threshold:
            alarms.append("feature_drift")
            reasons.append(f"{text} >= {settings.importance_drift_threshold:.0%}")
        else:
            info.append(f"{text} < {settings.importance_drift_threshold:.0%}")
    if inputs.drift_share is not None and inputs.drift_share >= settings.drift_share_threshold:
        info.append(
            f"data drift (information): {len(inputs.drifted_columns)} features drifted, "
            f"share {inputs.drift_share:.2f} >= {settings.drift_share_threshold:.2f}"
        )
    pred = inputs.prediction_drift
    if pred is not None and pred.get("drifted"):
        info.append(
            f"prediction drift (information): {pred['method']} {pred['score']:.3f} "
            f"(threshold {pred['threshold']:.3f})"
        )
    if not alarms:
        return DriftVerdict(
            "ok",
            False,
            ["performance within KPI, no drift on important features"],
            [],
            info,
            numbers,
        )
    status: Status = "quality" if any(a != "feature_drift" for a in alarms) else "drift"
    return DriftVerdict(status, True, reasons, alarms, info, numbers)
