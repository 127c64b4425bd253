"""Which months a window covers, and the retrain window a drifted month asks for."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from driftloop.errors import NotFoundError
from driftloop.monitoring.monitor import retrain_window, window_months


def test_window_months_use_new_york_time_and_ignore_stragglers() -> None:
    stamps = (
        ["2013-05-01T03:00:00Z"] * 3  # still April 30 in New York
        + ["2013-05-10T15:00:00Z"] * 90
        + ["2013-06-02T15:00:00Z"] * 7
    )
    frame = pd.DataFrame({"event_timestamp": pd.to_datetime(stamps, utc=True), "ts": None})
    assert window_months(frame) == ["2013-05", "2013-06"]  # April holds < 5 %


def test_window_months_fall_back_to_prediction_time() -> None:
    frame = pd.DataFrame(
        {"event_timestamp": [None] * 2, "ts": pd.to_datetime(["2026-03-02T12:00Z"] * 2)}
    )
    assert window_months(frame) == ["2026-03"]


def test_retrain_window_holds_out_the_drifted_month(make_settings: Any) -> None:
    settings = make_settings(monitoring={"retrain_window_months": 3})
    assert retrain_window("2013-07", settings) == {
        "start_month": "2013-04",
        "end_month": "2013-06",
        "holdout_month": "2013-07",
    }
    # Clipped at the first month of the data set; nothing before it is an error.
    assert retrain_window("2013-02", settings)["start_month"] == "2013-01"
    with pytest.raises(NotFoundError, match="no month before 2013-01"):
        retrain_window("2013-01", settings)
