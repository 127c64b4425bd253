"""Fixtures of the data integration tests: small data set folders in tmp (real weather, planes,
airlines and airports files; a flights file of real January rows, optionally corrupted)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from datasets import dataset_dir, raw_january_flights

MakeDataset = Callable[[pd.DataFrame], Path]


@pytest.fixture(scope="session")
def real_jan_flights() -> pd.DataFrame:
    """The first 2,000 real flights of January 2013 (raw columns; do not mutate)."""
    return raw_january_flights(2000)


@pytest.fixture
def make_dataset(tmp_path: Path) -> MakeDataset:
    """``make_dataset(flights)`` writes a data set folder whose flights.csv is ``flights``;
    calling it again rewrites that flights file (same folder)."""
    folder = tmp_path / "dataset"
    folder.mkdir()
    real = dataset_dir()
    for name in ("weather.csv", "planes.csv", "airlines.csv", "airports.csv"):
        shutil.copy(real / name, folder / name)

    def write(flights: pd.DataFrame) -> Path:
        flights.to_csv(folder / "flights.csv", index=False)
        return folder

    return write
