"""Ingest end to end with real git, real DVC and a local DVC remote in tmp folders."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from driftloop.data.ingest import ingest_months
from driftloop.data.repo import DataRepo
from driftloop.data.store import (
    available_months,
    data_revision,
    load_partitions,
    load_quarantine,
    partition_hashes,
)
from driftloop.errors import DataQualityError, InvalidInputError, NotFoundError
from driftloop.settings import Settings

pytestmark = pytest.mark.integration

MakeSettings = Callable[..., Settings]


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, capture_output=True, text=True, check=True
    ).stdout


def test_three_real_months_are_tracked_pushed_and_clean(make_settings: MakeSettings) -> None:
    settings = make_settings()
    steps: list[str] = []
    report = ingest_months(["2013-03", "2013-01", "2013-02"], settings, progress=steps.append)

    assert report.months == ["2013-01", "2013-02", "2013-03"]
    assert steps[0] == "read the data set"
    assert len(steps) == 8
    assert report.committed
    assert report.month("2013-01").rows_valid == 27_004
    assert report.month("2013-02").rows_valid == 24_951
    assert report.month("2013-03").rows_valid == 28_834
    assert all(p.rows_invalid == 0 for p in report.partitions.values() if p.kind == "flights")
    assert report.month("2013-02", "weather").rows_invalid == 1  # the 1048 mph reading
    assert report.partitions["planes/planes"].rows_valid == 3322

    repo = DataRepo(settings)
    assert repo.status() == {}  # dvc status: working tree matches the .dvc files
    assert repo.status(cloud=True) == {}  # dvc status -c: the remote holds every object
    assert _git(repo.root, "status", "--porcelain") == ""
    assert (
        data_revision(settings) == report.revision == _git(repo.root, "rev-parse", "HEAD").strip()
    )
    assert "2013-01..2013-03" in _git(repo.root, "log", "-1", "--format=%s")
    hashes = partition_hashes(None, settings)
    assert hashes == {key: p.md5 for key, p in report.partitions.items()}
    remote = Path(settings.dvc_remote_url)
    stored = {p.parent.name + p.name for p in (remote / "files" / "md5").glob("*/*")}
    assert set(hashes.values()) <= stored
    assert available_months(settings) == ["2013-01", "2013-02", "2013-03"]
    flights = load_partitions("flights", ["2013-02"], settings)
    assert len(flights) == 24_951
    assert flights["scheduled_departure"].dt.tz_convert("America/New_York").dt.month.eq(2).all()


def _corrupt(flights: pd.DataFrame) -> tuple[pd.DataFrame, dict[int, str]]:
    """10 invalid rows: 8 edited in place, 2 appended duplicates. Returns frame and reasons."""
    frame = flights.copy()
    departed = frame.index[frame["dep_time"].notna()]
    expected: dict[int, str] = {}
    for row in (10, 11, 12):
        frame.loc[row, "distance"] = -frame.loc[row, "distance"]
        expected[row] = "distance="
    for row in (20, 21):
        frame.loc[row, "origin"] = "XXX"
        expected[row] = "origin=XXX is not in {EWR, JFK, LGA}"
    for row in departed[30:32]:
        frame.loc[row, "tailnum"] = None
        expected[int(row)] = "tailnum is missing for a flight that departed"
    frame.loc[40, ["origin", "distance"]] = ["ZZZ", -1]
    expected[40] = "origin=ZZZ is not in {EWR, JFK, LGA}; distance=-1.0 < min 1"
    duplicates = frame.loc[[50, 51]]
    frame = pd.concat([frame, duplicates], ignore_index=True)
    for row in (len(flights), len(flights) + 1):
        expected[row] = "duplicate flight_id "
    return frame, expected


def test_corrupted_rows_land_in_quarantine_with_reasons(
    make_settings: MakeSettings,
    make_dataset: Callable[[pd.DataFrame], Path],
    real_jan_flights: pd.DataFrame,
) -> None:
    corrupted, expected = _corrupt(real_jan_flights)
    settings = make_settings(data={"dataset_dir": make_dataset(corrupted)})
    report = ingest_months(["2013-01"], settings)

    jan = report.month("2013-01")
    assert (jan.rows_valid, jan.rows_invalid) == (1992, 10)
    assert jan.invalid_share == pytest.approx(10 / 2002)
    quarantine = load_quarantine("flights", "2013-01", settings)
    assert sorted(quarantine["source_row"]) == sorted(expected)
    for row, reason in zip(quarantine["source_row"], quarantine["reason"], strict=True):
        assert expected[row] in reason
    flights = load_partitions("flights", ["2013-01"], settings)
    assert len(flights) == 1992
    assert flights["flight_id"].is_unique
    assert (flights["distance"] > 0).all()
    assert set(flights["origin"]) <= {"EWR", "JFK", "LGA"}
    # The first row of each duplicated key stays (its copies at rows 2000 and 2001 do not).
    for row in (50, 51):
        r = real_jan_flights.loc[row]
        stamp = f"{r['year']}{r['month']:02d}{r['day']:02d}{r['hour']:02d}{r['minute']:02d}"
        assert f"{r['carrier']}{r['flight']}-{r['origin']}-{stamp}" in set(flights["flight_id"])
    assert DataRepo(settings).status() == {}


def test_invalid_share_above_the_limit_fails_and_writes_nothing(
    make_settings: MakeSettings,
    make_dataset: Callable[[pd.DataFrame], Path],
    real_jan_flights: pd.DataFrame,
) -> None:
    corrupted, _ = _corrupt(real_jan_flights)
    settings = make_settings(
        data={"dataset_dir": make_dataset(corrupted), "max_invalid_share": 0.001}
    )
    with pytest.raises(DataQualityError) as caught:
        ingest_months(["2013-01"], settings)
    message = str(caught.value)
    assert "max_invalid_share=0.001" in message
    assert "invalid share 0.0050 (10 of 2002 rows)" in message
    assert "flights 2013-01" in message
    assert not DataRepo(settings).exists
    rejected = pd.read_parquet(settings.state / "rejected" / "flights-2013-01.parquet")
    assert len(rejected) == 10


def test_unchanged_month_is_a_no_op_and_old_versions_stay_readable(
    make_settings: MakeSettings,
    make_dataset: Callable[[pd.DataFrame], Path],
    real_jan_flights: pd.DataFrame,
) -> None:
    settings = make_settings(data={"dataset_dir": make_dataset(real_jan_flights)})
    first = ingest_months(["2013-01"], settings)
    old_rev, old_hash = first.revision, first.month("2013-01").md5
    old_frame = load_partitions("flights", ["2013-01"], settings)
    assert len(old_frame) == 2000

    again = ingest_months(["2013-01"], settings)
    assert not again.committed
    assert again.changed == []
    assert again.revision == old_rev
    assert again.month("2013-01").md5 == old_hash

    changed = real_jan_flights.head(1500)  # the source month changes
    make_dataset(changed)
    third = ingest_months(["2013-01"], settings)
    assert third.committed
    assert third.previous_revision == old_rev
    assert third.revision != old_rev
    assert third.month("2013-01").md5 != old_hash
    assert "flights/2013-01" in third.changed
    assert partition_hashes(["2013-01"], settings)["flights/2013-01"] == third.month("2013-01").md5
    assert len(load_partitions("flights", ["2013-01"], settings)) == 1500

    at_old = load_partitions("flights", ["2013-01"], settings, rev=old_rev)
    pd.testing.assert_frame_equal(at_old, old_frame)
    assert len(load_partitions("flights", None, settings, rev=old_rev[:10])) == 2000
    assert DataRepo(settings).status(cloud=True) == {}


def test_reading_a_month_that_was_never_ingested_names_the_command(
    make_settings: MakeSettings,
    make_dataset: Callable[[pd.DataFrame], Path],
    real_jan_flights: pd.DataFrame,
) -> None:
    settings = make_settings(data={"dataset_dir": make_dataset(real_jan_flights)})
    with pytest.raises(NotFoundError, match="run `driftloop ingest"):
        data_revision(settings)
    assert available_months(settings) == []
    ingest_months(["2013-01"], settings)
    with pytest.raises(NotFoundError) as caught:
        load_partitions("flights", ["2013-05"], settings)
    assert str(caught.value) == (
        "month 2013-05 is not ingested; run driftloop ingest --from 2013-05 --to 2013-05"
    )
    with pytest.raises(NotFoundError, match="data revision 'nope' does not exist"):
        load_partitions("flights", ["2013-01"], settings, rev="nope")
    with pytest.raises(InvalidInputError, match="no flights in"):
        ingest_months(["2013-02"], settings)  # the small data set holds only January
    with pytest.raises(InvalidInputError, match=r"outside the data set \(2013-01..2013-12\)"):
        ingest_months(["2014-01"], settings)


def test_modified_working_tree_file_is_refused(
    make_settings: MakeSettings,
    make_dataset: Callable[[pd.DataFrame], Path],
    real_jan_flights: pd.DataFrame,
) -> None:
    settings = make_settings(data={"dataset_dir": make_dataset(real_jan_flights)})
    ingest_months(["2013-01"], settings)
    partition = DataRepo(settings).root / "flights" / "2013-01.parquet"
    partition.write_bytes(partition.read_bytes() + b"x")
    with pytest.raises(DataQualityError, match="differs from its recorded DVC hash"):
        load_partitions("flights", ["2013-01"], settings)
    partition.unlink()  # missing from the working tree: read from the committed version
    assert len(load_partitions("flights", ["2013-01"], settings)) == 2000
