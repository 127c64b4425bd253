"""Data profiles at ingest with real git and DVC: every partition's profile is committed with it
and readable at any revision, an unchanged re-ingest flags nothing, and planted shifts (doubled
departure delays, a weather column nulled out) are flagged with the partition and column named,
by ingest and by the check training runs before it starts."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from datasets import raw_table

from driftloop.data.ingest import ingest_months
from driftloop.data.profile import check_window, load_profile
from driftloop.data.repo import DataRepo
from driftloop.settings import Settings

pytestmark = pytest.mark.integration

MakeSettings = Callable[..., Settings]
MakeDataset = Callable[[pd.DataFrame], Path]


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, capture_output=True, text=True, check=True
    ).stdout


def doubled_departure_delays(raw: pd.DataFrame, month: int = 1) -> pd.DataFrame:
    """Raw flights whose ``month`` departure delays are doubled, with ``dep_time`` moved to match
    (so the data contract still passes: a shift, not invalid rows)."""
    out = raw.copy()
    rows = (out["month"] == month) & out["dep_delay"].notna()
    scheduled = out["sched_dep_time"] // 100 * 60 + out["sched_dep_time"] % 100
    departed = (scheduled + 2 * out["dep_delay"]) % 1440
    out.loc[rows, "dep_delay"] = out.loc[rows, "dep_delay"] * 2
    out.loc[rows, "dep_time"] = (departed // 60 * 100 + departed % 60)[rows]
    return out


@pytest.fixture(scope="module")
def jan_feb() -> pd.DataFrame:
    """The first 2,000 real flights of January and of February 2013 (raw columns)."""
    flights = raw_table("flights")
    return pd.concat(
        [flights[flights["month"] == 1].head(2000), flights[flights["month"] == 2].head(2000)]
    ).reset_index(drop=True)


def test_profiles_are_committed_per_month_and_a_planted_shift_is_flagged(
    make_settings: MakeSettings, make_dataset: MakeDataset, jan_feb: pd.DataFrame
) -> None:
    settings = make_settings(data={"dataset_dir": make_dataset(jan_feb)})
    first = ingest_months(["2013-01", "2013-02"], settings)
    repo = DataRepo(settings)

    # One profile per partition, committed with it (git-tracked JSON next to the DVC files).
    tracked = _git(repo.root, "ls-files", "profiles").split()
    assert tracked == [
        "profiles/flights-2013-01.json",
        "profiles/flights-2013-02.json",
        "profiles/planes.json",
        "profiles/weather-2013-01.json",
        "profiles/weather-2013-02.json",
    ]
    assert _git(repo.root, "status", "--porcelain") == ""
    assert first.month("2013-01").profile_path == "profiles/flights-2013-01.json"
    profile = load_profile(repo, "flights", "2013-01", first.revision)
    assert profile is not None
    assert profile["rows"] == first.month("2013-01").rows_valid == 2000
    dep_delay = profile["columns"]["dep_delay"]
    assert dep_delay["max"] == jan_feb[jan_feb["month"] == 1]["dep_delay"].max()
    # First ingest: February is judged against January (a new month), nothing is flagged.
    assert first.shift["status"] == "ok"
    assert {(p["partition"], p["comparison"]) for p in first.shift["partitions"]} == {
        ("flights/2013-02", "new"),
        ("weather/2013-02", "new"),
    }
    assert set(first.shift["unreferenced"]) == {
        "flights/2013-01",
        "weather/2013-01",
        "planes/planes",
    }

    # Unchanged re-ingest: no commit, every partition compared with itself, nothing flagged.
    again = ingest_months(["2013-01", "2013-02"], settings)
    assert not again.committed
    assert again.shift["status"] == "ok"
    assert again.shift["findings"] == []
    assert {p["comparison"] for p in again.shift["partitions"]} == {"revised"}
    assert all(c["psi"] in (None, 0.0) for p in again.shift["partitions"] for c in p["columns"])
    assert check_window(["2013-01", "2013-02"], settings).findings() == []

    # Planted: January's departure delays doubled upstream.
    make_dataset(doubled_departure_delays(jan_feb))
    planted = ingest_months(["2013-01"], settings)
    assert planted.committed
    assert planted.shift["status"] == "flagged"
    findings = planted.shift["findings"]
    assert len(findings) == 1
    assert findings[0].startswith("flights/2013-01.dep_delay (revised vs flights/2013-01@")
    assert "PSI" in findings[0]
    assert any("flights/2013-01.dep_delay" in w for w in planted.warnings)
    shifted = next(p for p in planted.shift["partitions"] if p["partition"] == "flights/2013-01")
    psi = next(c["psi"] for c in shifted["columns"] if c["column"] == "dep_delay")
    assert psi > settings.data.profile_psi_limit
    assert shifted["limits"]["psi"] == settings.data.profile_psi_limit
    # Both versions of the profile stay readable by revision.
    before = load_profile(repo, "flights", "2013-01", first.revision)
    after = load_profile(repo, "flights", "2013-01", planted.revision)
    assert before is not None
    assert after is not None
    assert after["columns"]["dep_delay"]["max"] == 2 * before["columns"]["dep_delay"]["max"]

    # The check before training: the window against the revision before blocks by default...
    report = check_window(["2013-01"], settings)
    assert report.reference_rev == first.revision
    assert report.blocking
    assert report.blocking_findings()[0].startswith("flights/2013-01.dep_delay")
    # ...and against the planted revision itself finds nothing new.
    assert check_window(["2013-01"], settings, reference_rev=planted.revision).findings() == []
    # profile_block=off flags without blocking.
    lenient = settings.model_copy(
        update={"data": settings.data.model_copy(update={"profile_block": "off"})}
    )
    off = check_window(["2013-01"], lenient)
    assert off.flagged
    assert not off.blocking


def test_a_weather_column_nulled_out_is_flagged_by_its_missing_share(
    make_settings: MakeSettings, make_dataset: MakeDataset, jan_feb: pd.DataFrame
) -> None:
    folder = make_dataset(jan_feb)
    settings = make_settings(data={"dataset_dir": folder})
    ingest_months(["2013-01"], settings)

    weather = pd.read_csv(folder / "weather.csv")
    weather.loc[weather["month"] == 1, "temp"] = np.nan
    weather.to_csv(folder / "weather.csv", index=False)
    report = ingest_months(["2013-01"], settings)

    assert report.shift["status"] == "flagged"
    assert len(report.shift["findings"]) == 1
    finding = report.shift["findings"][0]
    assert finding.startswith("weather/2013-01.temp (revised vs weather/2013-01@")
    assert "missing share 0.000 -> 1.000" in finding
