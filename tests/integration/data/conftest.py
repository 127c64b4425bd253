"""Fixtures of the data integration tests: small data set folders in tmp (real weather, planes,
airlines and airports files; a flights file of real January rows, optionally corrupted)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from driftloop.settings import Settings

MakeDataset = Callable[[pd.DataFrame], Path]


@pytest.fixture(scope="session")
def real_jan_flights() -> pd.DataFrame:
    """The first 2,000 real flights of January 2013 (raw columns; do not mutate)."""
    from driftloop.data import source

    flights = source.read_table("flights", Settings())
    return flights[flights["month"] == 1].head(2000).reset_index(drop=True)


@pytest.fixture
def make_dataset(tmp_path: Path) -> MakeDataset:
    """``make_dataset(flights)`` writes a data set folder whose flights.csv is ``flights``;
    calling it again rewrites that flights file (same folder)."""
    from driftloop.data import source

    folder = tmp_path / "dataset"
    folder.mkdir()
    real = source.dataset_dir(Settings())
    for name in ("weather.csv", "planes.csv", "airlines.csv", "airports.csv"):
        shutil.copy(real / name, folder / name)

    def write(flights: pd.DataFrame) -> Path:
        flights.to_csv(folder / "flights.csv", index=False)
        return folder

    return write
