"""Thresholds -> verdict: does a drift summary call for a retrain?

Rules (all thresholds in ``settings.monitoring``):

- fewer than ``min_rows`` current rows: ``insufficient_data`` (never an alarm);
- the share of drifted features reaches ``drift_share_threshold``: data drift;
- the prediction (``late_probability``) drifted: prediction drift;
- with at least ``min_labeled_rows`` labels, live ROC AUC below ``min_auc``: quality alarm.

Any alarm makes ``retrain`` true.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from driftloop.monitoring.adapter import DriftSummary
from driftloop.settings import MonitoringSettings

Status = Literal["ok", "drift", "quality", "insufficient_data"]


@dataclass(frozen=True)
class DriftVerdict:
    """The decision on one monitoring window."""

    status: Status
    retrain: bool
    reasons: list[str] = field(default_factory=list)
    alarms: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons) or self.status


def judge_drift(summary: DriftSummary, settings: MonitoringSettings | None = None) -> DriftVerdict:
    """Apply the monitoring thresholds to ``summary``."""
    settings = settings or MonitoringSettings()
    if summary.rows_current < settings.min_rows:
        return DriftVerdict(
            status="insufficient_data",
            retrain=False,
            reasons=[f"{summary.rows_current} captured rows < min_rows {settings.min_rows}"],
        )
    reasons: list[str] = []
    alarms: list[str] = []
    if summary.drift_share >= settings.drift_share_threshold:
        alarms.append("data_drift")
        top = ", ".join(summary.drifted_columns[:5])
        reasons.append(
            f"data drift: {len(summary.drifted_columns)} features drifted "
            f"(share {summary.drift_share:.2f} >= {settings.drift_share_threshold:.2f}: {top})"
        )
    pred = summary.prediction_drift
    if pred is not None and pred.drifted:
        alarms.append("prediction_drift")
        reasons.append(
            f"prediction drift: {pred.method} {pred.score:.3f} (threshold {pred.threshold:.3f})"
        )
    auc = summary.quality.get("roc_auc")
    if (
        auc is not None
        and summary.rows_labeled >= settings.min_labeled_rows
        and auc < settings.min_auc
    ):
        alarms.append("quality")
        reasons.append(f"live ROC AUC {auc:.3f} < min_auc {settings.min_auc:.3f}")
    if not alarms:
        return DriftVerdict(
            status="ok",
            retrain=False,
            reasons=[f"drift share {summary.drift_share:.2f} below threshold"],
        )
    status: Status = "drift" if any(a.endswith("drift") for a in alarms) else "quality"
    return DriftVerdict(status=status, retrain=True, reasons=reasons, alarms=alarms)
