"""The data contract: real data passes, each kind of corruption is caught with its reason."""

from __future__ import annotations

import pandas as pd
import pytest

from driftloop.data.contract import FLIGHTS, PLANES, WEATHER
from driftloop.data.validation import REASON, SOURCE_ROW, validate
from driftloop.errors import DataQualityError


def test_real_data_passes_the_contract(
    real_tables: dict[str, pd.DataFrame], refs: dict[str, frozenset[str]]
) -> None:
    flights = validate(FLIGHTS, real_tables["flights"], refs)
    assert (flights.rows_valid, flights.rows_invalid) == (336_776, 0)
    planes = validate(PLANES, real_tables["planes"])
    assert (planes.rows_valid, planes.rows_invalid) == (3322, 0)
    weather = validate(WEATHER, real_tables["weather"])
    # One real sensor error: EWR 2013-02-12 03:00 reports wind_speed 1048 mph.
    assert weather.rows_invalid == 1
    bad = weather.quarantine.iloc[0]
    assert (bad["origin"], bad["time_hour"]) == ("EWR", "2013-02-12T08:00:00Z")
    assert bad[REASON] == "wind_speed=1048.36058 > max 200"


def _set(frame: pd.DataFrame, pos: int, **values: object) -> int:
    """Set columns of the row at position ``pos``; returns its index label (the source row)."""
    label = frame.index[pos]
    for column, value in values.items():
        frame[column] = frame[column].astype(object)
        frame.loc[label, column] = value
    return int(label)


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        ({"distance": -200}, "distance=-200.0 < min 1"),
        ({"distance": "far"}, "distance=far is not a number"),
        ({"origin": "XXX"}, "origin=XXX is not in {EWR, JFK, LGA}"),
        ({"carrier": "ZZ"}, "carrier=ZZ is not in airlines.carrier"),
        ({"dest": "not-an-airport"}, "dest=not-an-airport does not match [A-Z0-9]{3}"),
        ({"tailnum": None}, "tailnum is missing for a flight that departed (dep_time is set)"),
        ({"flight": 12.5}, "flight=12.5 is not an integer"),
        ({"dep_time": 1275.0}, "dep_time=1275.0 is not a clock time HHMM"),
        ({"month": 13}, "month=13.0 > max 12"),
        ({"carrier": None}, "carrier is missing"),
        ({"time_hour": "yesterday"}, "time_hour=yesterday is not an ISO timestamp"),
        ({"time_hour": "2013-01-01T11:00:00Z"}, "time_hour is not the local year/month/day/hour"),
        ({"sched_dep_time": 516}, "sched_dep_time differs from hour*100+minute"),
        ({"dep_delay": 99.0}, "dep_delay does not match dep_time - sched_dep_time"),
        ({"arr_delay": 99.0}, "arr_delay does not match arr_time - sched_arr_time"),
    ],
)
def test_corrupted_cell_is_quarantined_with_its_reason(
    jan_flights: pd.DataFrame,
    refs: dict[str, frozenset[str]],
    values: dict[str, object],
    reason: str,
) -> None:
    # Row 0 is UA1545 EWR->IAH at 05:15 local on 2013-01-01 (time_hour 10:00Z), departed.
    source_row = _set(jan_flights, 0, **values)
    result = validate(FLIGHTS, jan_flights, refs)
    assert result.rows_invalid == 1
    assert result.rows_valid == len(jan_flights) - 1
    row = result.quarantine.iloc[0]
    assert row[SOURCE_ROW] == source_row
    assert reason in row[REASON]
    assert source_row not in result.valid.index


def test_cancelled_flight_may_lack_a_tailnum(
    jan_flights: pd.DataFrame, refs: dict[str, frozenset[str]]
) -> None:
    cancelled = jan_flights.index[jan_flights["dep_time"].isna()][0]
    jan_flights.loc[cancelled, "tailnum"] = None
    result = validate(FLIGHTS, jan_flights, refs)
    assert result.rows_invalid == 0
    assert pd.isna(result.valid.loc[cancelled, "tailnum"])


def test_several_reasons_are_joined_with_semicolons(
    jan_flights: pd.DataFrame, refs: dict[str, frozenset[str]]
) -> None:
    _set(jan_flights, 3, distance=-1, origin="ZZZ")
    result = validate(FLIGHTS, jan_flights, refs)
    reasons = result.quarantine[REASON].iloc[0].split("; ")
    assert reasons == ["origin=ZZZ is not in {EWR, JFK, LGA}", "distance=-1.0 < min 1"]


def test_duplicate_key_keeps_the_first_row_and_quarantines_later_ones(
    jan_flights: pd.DataFrame, refs: dict[str, frozenset[str]]
) -> None:
    original = jan_flights.iloc[[5]]
    copies = pd.concat([original, original]).set_axis([900_001, 900_002])
    frame = pd.concat([jan_flights, copies])
    result = validate(FLIGHTS, frame, refs)
    assert sorted(result.quarantine[SOURCE_ROW]) == [900_001, 900_002]
    assert original.index[0] in result.valid.index
    assert result.quarantine[REASON].str.startswith("duplicate flight_id UA").all()
    assert result.quarantine[REASON].str.endswith("(an earlier row has this key)").all()


def test_an_invalid_row_does_not_claim_its_key(
    jan_flights: pd.DataFrame, refs: dict[str, frozenset[str]]
) -> None:
    first = _set(jan_flights, 7, distance=-5)
    copy = jan_flights.loc[[first]].set_axis([900_000])
    copy["distance"] = 100.0
    result = validate(FLIGHTS, pd.concat([jan_flights, copy]), refs)
    assert list(result.quarantine[SOURCE_ROW]) == [first]
    assert 900_000 in result.valid.index


def test_missing_declared_column_fails_the_whole_table(
    jan_flights: pd.DataFrame, refs: dict[str, frozenset[str]]
) -> None:
    with pytest.raises(DataQualityError, match="flights: columns distance are missing"):
        validate(FLIGHTS, jan_flights.drop(columns="distance"), refs)


def test_quarantine_keeps_raw_values_as_text(
    jan_flights: pd.DataFrame, refs: dict[str, frozenset[str]]
) -> None:
    _set(jan_flights, 0, distance="far")
    result = validate(FLIGHTS, jan_flights, refs)
    row = result.quarantine.iloc[0]
    assert row["distance"] == "far"
    assert row["carrier"] == "UA"
    assert list(result.quarantine.columns)[-2:] == [SOURCE_ROW, REASON]


def test_contract_describes_every_column_and_rule() -> None:
    rows = FLIGHTS.describe()
    checks = [r["check"] for r in rows]
    assert checks[: len(FLIGHTS.columns)] == [c.name for c in FLIGHTS.columns]
    assert "tailnum_when_departed" in checks
    assert checks[-1] == "unique flight_id"
