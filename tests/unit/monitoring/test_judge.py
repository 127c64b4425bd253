"""Verdicts from thresholds (no Evidently: summaries built by hand)."""

from __future__ import annotations

from driftloop.monitoring.adapter import ColumnDrift, DriftSummary
from driftloop.monitoring.judge import judge_drift
from driftloop.settings import MonitoringSettings

S = MonitoringSettings(drift_share_threshold=0.3, min_rows=200, min_auc=0.6, min_labeled_rows=100)


def summary(**kw) -> DriftSummary:
    base = dict(
        rows_reference=5000,
        rows_current=1000,
        rows_labeled=0,
        drift_share=0.0,
        drifted_columns=[],
        columns={},
        prediction_drift=ColumnDrift("late_probability", "wasserstein", 0.02, 0.1, False),
        missing_share_reference=0.0,
        missing_share_current=0.0,
    )
    return DriftSummary(**{**base, **kw})


def test_quiet_window_is_ok() -> None:
    v = judge_drift(summary(drift_share=0.1, drifted_columns=["temp", "dewp"]), S)
    assert (v.status, v.retrain, v.alarms) == ("ok", False, [])


def test_share_at_threshold_is_drift_and_names_columns() -> None:
    v = judge_drift(summary(drift_share=0.3, drifted_columns=["temp", "dewp", "visib"]), S)
    assert v.status == "drift"
    assert v.retrain
    assert v.alarms == ["data_drift"]
    assert "temp, dewp, visib" in v.reason


def test_prediction_drift_alone_calls_for_retrain() -> None:
    pred = ColumnDrift("late_probability", "wasserstein", 0.3, 0.1, True)
    v = judge_drift(summary(prediction_drift=pred), S)
    assert v.retrain
    assert v.alarms == ["prediction_drift"]
    assert v.status == "drift"


def test_low_auc_needs_enough_labels() -> None:
    few = judge_drift(summary(rows_labeled=50, quality={"roc_auc": 0.52}), S)
    assert not few.retrain
    many = judge_drift(summary(rows_labeled=500, quality={"roc_auc": 0.52}), S)
    assert many.status == "quality"
    assert many.alarms == ["quality"]


def test_too_few_rows_is_never_an_alarm() -> None:
    v = judge_drift(summary(rows_current=150, drift_share=0.9, drifted_columns=["temp"]), S)
    assert v.status == "insufficient_data"
    assert not v.retrain
