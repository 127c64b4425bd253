"""The feature pipeline's pure functions: point-in-time rules of the source tables."""

from __future__ import annotations

import pandas as pd
import pytest

from driftloop.errors import InvalidInputError
from driftloop.features import pipeline
from driftloop.schema import LOCAL_TZ

NY = LOCAL_TZ


def local(ts: str) -> pd.Timestamp:
    return pd.Timestamp(ts).tz_localize(NY).tz_convert("UTC")


def flights(rows: list[dict]) -> pd.DataFrame:
    """Flights frame (driftloop.data shape, only the columns the pipeline reads)."""
    base = {"carrier": "AA", "origin": "JFK", "dep_delay": 0.0, "air_time": 60.0, "is_late": 0}
    df = pd.DataFrame([{**base, **r} for r in rows])
    df["scheduled_departure"] = [local(t) for t in df["dep"]]
    df["is_late"] = df["is_late"].astype("Int8")
    return df.drop(columns="dep")


def value_at(table: pd.DataFrame, stamp: pd.Timestamp, carrier="AA", origin="JFK") -> pd.Series:
    sel = table[
        (table["event_timestamp"] == stamp)
        & (table["carrier"] == carrier)
        & (table["origin"] == origin)
    ]
    assert len(sel) == 1, f"expected one row at {stamp}, got {len(sel)}"
    return sel.iloc[0]


def test_aggregate_of_day_d_excludes_day_d_flights() -> None:
    df = flights(
        [
            {"dep": "2013-01-09 08:00", "is_late": 1, "dep_delay": 30.0},
            {"dep": "2013-01-09 12:00", "is_late": 0, "dep_delay": 10.0},
            # Day D = Jan 10: its own flights must not be in the value stamped at Jan 10 00:00.
            {"dep": "2013-01-10 06:00", "is_late": 1, "dep_delay": 500.0},
            {"dep": "2013-01-10 07:00", "is_late": 1, "dep_delay": 500.0},
        ]
    )
    table = pipeline.build_carrier_origin_features(df)
    row = value_at(table, local("2013-01-10 00:00"))
    assert row["flights_7d"] == 2
    assert row["late_rate_7d"] == pytest.approx(0.5)
    assert row["mean_dep_delay_7d"] == pytest.approx(20.0)
    # The next day's value includes day D.
    nxt = value_at(table, local("2013-01-11 00:00"))
    assert nxt["flights_7d"] == 4
    assert nxt["late_rate_7d"] == pytest.approx(0.75)


def test_changing_day_d_outcomes_does_not_change_day_d_value() -> None:
    rows = [
        {"dep": "2013-01-08 09:00", "is_late": 1},
        {"dep": "2013-01-10 09:00", "is_late": 0},
    ]
    a = pipeline.build_carrier_origin_features(flights(rows))
    rows[1]["is_late"] = 1
    b = pipeline.build_carrier_origin_features(flights(rows))
    stamp = local("2013-01-10 00:00")
    pd.testing.assert_series_equal(value_at(a, stamp), value_at(b, stamp))
    assert value_at(a, local("2013-01-11 00:00"))["late_rate_7d"] != pytest.approx(
        value_at(b, local("2013-01-11 00:00"))["late_rate_7d"]
    )


def test_flight_landing_after_midnight_counts_from_the_following_day() -> None:
    # Departs 23:00, 2 h in the air + buffer: outcome known after midnight of Jan 10.
    df = flights(
        [
            {"dep": "2013-01-09 23:00", "air_time": 120.0, "is_late": 1},
            {"dep": "2013-01-11 10:00"},  # extends the horizon
        ]
    )
    table = pipeline.build_carrier_origin_features(df)
    assert not (table["event_timestamp"] == local("2013-01-10 00:00")).any()
    assert value_at(table, local("2013-01-11 00:00"))["flights_7d"] == 1


def test_window_is_seven_days() -> None:
    df = flights([{"dep": "2013-01-01 09:00", "is_late": 1}, {"dep": "2013-01-12 09:00"}])
    table = pipeline.build_carrier_origin_features(df)
    stamps = set(table.loc[table["late_rate_7d"] == 1.0, "event_timestamp"])
    # Known on Jan 1 -> in the values stamped Jan 2 .. Jan 8, not Jan 9.
    assert stamps == {local(f"2013-01-{d:02d} 00:00") for d in range(2, 9)}


def test_stamps_are_local_midnight_in_utc_across_dst() -> None:
    df = flights([{"dep": "2013-07-01 09:00"}, {"dep": "2013-07-02 09:00"}])
    table = pipeline.build_carrier_origin_features(df)
    assert pd.Timestamp("2013-07-02 04:00", tz="UTC") in set(table["event_timestamp"])
    df = flights([{"dep": "2013-01-01 09:00"}, {"dep": "2013-01-02 09:00"}])
    table = pipeline.build_carrier_origin_features(df)
    assert pd.Timestamp("2013-01-02 05:00", tz="UTC") in set(table["event_timestamp"])


def test_cancelled_flights_and_other_pairs_are_separate() -> None:
    df = flights(
        [
            {"dep": "2013-01-05 09:00", "is_late": 1},
            {"dep": "2013-01-05 10:00", "is_late": None, "dep_delay": None, "air_time": None},
            {"dep": "2013-01-05 11:00", "is_late": 0, "carrier": "UA"},
        ]
    )
    table = pipeline.build_carrier_origin_features(df)
    stamp = local("2013-01-06 00:00")
    assert value_at(table, stamp)["flights_7d"] == 1
    assert value_at(table, stamp, carrier="UA")["late_rate_7d"] == 0.0


def test_no_stamp_beyond_the_data_horizon() -> None:
    df = flights([{"dep": "2013-01-31 23:30", "air_time": 200.0}, {"dep": "2013-01-30 09:00"}])
    table = pipeline.build_carrier_origin_features(df)
    assert table["event_timestamp"].max() == local("2013-02-01 00:00")


def test_weather_is_stamped_at_its_hour_and_deduplicated() -> None:
    weather = pd.DataFrame(
        {
            "origin": ["JFK", "JFK", "EWR"],
            "time_hour": pd.to_datetime(
                ["2013-01-01 06:00", "2013-01-01 06:00", "2013-01-01 07:00"], utc=True
            ),
            **{c: [1.0, 2.0, 3.0] for c in pipeline.WEATHER_FEATURES},
        }
    )
    table = pipeline.build_weather_features(weather)
    assert list(table.columns) == pipeline.WEATHER_COLUMNS
    assert len(table) == 2
    assert str(table["event_timestamp"].dtype) == "datetime64[ns, UTC]"
    assert table.loc[table["origin"] == "JFK", "temp"].item() == 2.0


def test_planes_are_stamped_once_with_float_attributes() -> None:
    planes = pd.DataFrame(
        {
            "tailnum": ["N1", "N2", None],
            "plane_year": pd.array([2001, None, 1999], dtype="Int64"),
            "plane_type": ["Fixed wing", None, "x"],
            "seats": pd.array([100, 50, 10], dtype="Int64"),
            "engines": pd.array([2, 2, 1], dtype="Int64"),
        }
    )
    stamp = pd.Timestamp("2013-01-01 05:00", tz="UTC")
    table = pipeline.build_plane_features(planes, stamp)
    assert list(table["tailnum"]) == ["N1", "N2"]
    assert (table["event_timestamp"] == stamp).all()
    assert table["plane_year"].isna().tolist() == [False, True]
    assert table["plane_type"].tolist() == ["Fixed wing", None]
    assert str(table["seats"].dtype) == "float64"


def test_missing_columns_are_named() -> None:
    with pytest.raises(InvalidInputError, match="air_time"):
        pipeline.build_carrier_origin_features(
            flights([{"dep": "2013-01-01 09:00"}]).drop(columns="air_time")
        )
