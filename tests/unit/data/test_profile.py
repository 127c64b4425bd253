"""Data profiles and their shift scores on real January flights (no repository: the frames are
profiled and compared directly; ingest and the training check are in tests/integration)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from datasets import partition_flights

from driftloop.data.profile import (
    ShiftLimits,
    ShiftReport,
    categorical_psi,
    compare,
    numeric_psi,
    profile_bytes,
    profile_frame,
    psi,
)

LIMITS = ShiftLimits(psi=0.1, missing=0.02, rows=0.05)


@pytest.fixture(scope="module")
def january() -> pd.DataFrame:
    return partition_flights(["2013-01"]).head(5000).reset_index(drop=True)


def test_profile_holds_kinds_missing_shares_ranges_and_top_categories(
    january: pd.DataFrame,
) -> None:
    profile = profile_frame(january, "flights", "2013-01")
    cols = profile["columns"]
    assert profile["partition"] == "flights/2013-01"
    assert profile["rows"] == 5000
    assert cols["dep_delay"]["kind"] == "numeric"
    assert cols["dep_delay"]["min"] == january["dep_delay"].min()
    assert cols["dep_delay"]["max"] == january["dep_delay"].max()
    assert cols["dep_delay"]["missing_share"] == pytest.approx(january["dep_delay"].isna().mean())
    assert len(cols["dep_delay"]["quantiles"]) == 21
    assert cols["carrier"]["kind"] == "categorical"
    shares = dict(cols["carrier"]["top"])
    assert shares["UA"] == pytest.approx((january["carrier"] == "UA").mean(), abs=1e-6)
    assert cols["flight_id"]["kind"] == "identifier"  # a key: no distribution kept
    assert "top" not in cols["flight_id"]
    assert cols["scheduled_departure"]["kind"] == "datetime"
    assert dict(cols["is_late"]["top"]).keys() == {0.0, 1.0}  # few values: exact shares


def test_profile_bytes_are_stable_for_equal_frames(january: pd.DataFrame) -> None:
    one = profile_bytes(profile_frame(january, "flights", "2013-01"))
    two = profile_bytes(profile_frame(january.copy(), "flights", "2013-01"))
    assert one == two
    assert json.loads(one)["rows"] == 5000


def test_psi_is_zero_for_equal_shares_and_grows_with_the_shift() -> None:
    assert psi(np.array([0.5, 0.5]), np.array([0.5, 0.5])) == 0.0
    small = psi(np.array([0.5, 0.5]), np.array([0.45, 0.55]))
    large = psi(np.array([0.5, 0.5]), np.array([0.1, 0.9]))
    assert 0 < small < 0.05 < large


def test_numeric_psi_from_quantile_sketches() -> None:
    rng = np.random.default_rng(0)
    levels = np.linspace(0, 1, 21)
    base = rng.normal(0, 1, 20_000)
    same = np.quantile(base, levels).tolist()
    other_sample = np.quantile(rng.normal(0, 1, 20_000), levels).tolist()
    moved = np.quantile(base + 1.0, levels).tolist()
    assert numeric_psi(same, same) == 0.0
    assert numeric_psi(same, other_sample) < 0.01  # sampling noise stays far below 0.1
    assert numeric_psi(same, moved) > 0.5  # one standard deviation: a large shift


def test_categorical_psi_uses_the_shared_categories_and_a_rest_bucket() -> None:
    ref = [["AA", 0.5], ["UA", 0.3], ["B6", 0.2]]
    assert categorical_psi(ref, ref) == 0.0
    assert categorical_psi(ref, [["AA", 0.1], ["UA", 0.3], ["B6", 0.6]]) > 0.5


def test_an_unchanged_month_scores_zero_and_a_planted_shift_names_the_column(
    january: pd.DataFrame,
) -> None:
    ref = profile_frame(january, "flights", "2013-01")
    same = compare(ref, profile_frame(january, "flights", "2013-01"), "revised", LIMITS, "x")
    assert not same.flagged
    assert all(c.psi in (None, 0.0) for c in same.columns)

    doubled = january.copy()
    doubled["dep_delay"] = doubled["dep_delay"] * 2
    shift = compare(ref, profile_frame(doubled, "flights", "2013-01"), "revised", LIMITS, "x")
    assert [c.column for c in shift.flagged_columns] == ["dep_delay"]
    assert shift.flagged_columns[0].psi > 0.5
    assert "flights/2013-01.dep_delay" in shift.findings()[0]
    assert "PSI" in shift.findings()[0]


def test_a_nulled_column_and_lost_rows_are_flagged(january: pd.DataFrame) -> None:
    ref = profile_frame(january, "flights", "2013-01")
    nulled = january.head(4000).copy()
    nulled["air_time"] = np.nan
    shift = compare(ref, profile_frame(nulled, "flights", "2013-01"), "revised", LIMITS, "x")
    air_time = next(c for c in shift.columns if c.column == "air_time")
    assert air_time.missing_after == 1.0
    assert any("missing share" in r for r in air_time.reasons)
    assert any("rows 5000 -> 4000" in r for r in shift.reasons)


def test_a_dropped_column_is_flagged(january: pd.DataFrame) -> None:
    ref = profile_frame(january, "flights", "2013-01")
    cur = profile_frame(january.drop(columns=["air_time"]), "flights", "2013-01")
    assert "column air_time disappeared" in compare(ref, cur, "revised", LIMITS, "x").reasons


def test_block_setting_decides_which_findings_stop_training(january: pd.DataFrame) -> None:
    ref = profile_frame(january, "flights", "2013-01")
    doubled = january.assign(dep_delay=january["dep_delay"] * 2)
    cur = profile_frame(doubled, "flights", "2013-01")
    revised = compare(ref, cur, "revised", LIMITS, "a")
    new = compare(ref, cur, "new", LIMITS, "b")
    for block, expected in (("off", 0), ("revised", 1), ("all", 2)):
        report = ShiftReport("r", "q", "test", block, partitions=[revised, new])
        assert len(report.blocking_findings()) == expected
        assert report.flagged


def test_report_survives_its_json_form(january: pd.DataFrame) -> None:
    ref = profile_frame(january, "flights", "2013-01")
    cur = profile_frame(january.assign(dep_delay=january["dep_delay"] + 30), "flights", "2013-01")
    report = ShiftReport("r", "q", "test", "revised", [compare(ref, cur, "revised", LIMITS, "x")])
    again = ShiftReport.from_dict(json.loads(json.dumps(report.to_dict())))
    assert again.findings() == report.findings()
    assert again.blocking
    assert again.status == "flagged"
    assert "dep_delay" in again.markdown()
