"""Partition frames have the documented columns; parquet bytes are deterministic."""

from __future__ import annotations

import io

import pandas as pd
import pyarrow.parquet as pq

from driftloop.data import partitions as parts
from driftloop.data.contract import FLIGHTS, PLANES, WEATHER
from driftloop.data.validation import validate


def _read(data: bytes) -> pd.DataFrame:
    return pq.read_table(io.BytesIO(data)).to_pandas()


def test_flights_partition_columns_and_values(
    jan_flights: pd.DataFrame, refs: dict[str, frozenset[str]]
) -> None:
    frame = parts.flights_frame(validate(FLIGHTS, jan_flights, refs).valid)
    assert list(frame.columns) == parts.FLIGHTS_SCHEMA.names
    assert frame["flight_id"].is_unique
    first = frame[frame["flight_id"] == "UA1545-EWR-201301010515"].iloc[0]
    assert first["scheduled_departure"] == pd.Timestamp("2013-01-01 10:15", tz="UTC")
    assert (first["tailnum"], first["dest"], first["distance"]) == ("N14228", "IAH", 1400.0)
    assert first["is_late"] == 0  # arr_delay 11
    assert frame["is_late"].dtype == "Int8"
    late = frame["arr_delay"] > 15
    assert (frame.loc[late, "is_late"] == 1).all()
    cancelled = frame["arr_delay"].isna()
    assert cancelled.sum() >= 50
    assert frame.loc[cancelled, "is_late"].isna().all()
    assert frame["scheduled_departure"].is_monotonic_increasing


def test_parquet_is_byte_identical_for_equal_input_and_keeps_dtypes(
    jan_flights: pd.DataFrame, refs: dict[str, frozenset[str]]
) -> None:
    frame = parts.flights_frame(validate(FLIGHTS, jan_flights, refs).valid)
    shuffled = parts.flights_frame(
        validate(FLIGHTS, jan_flights.sample(frac=1, random_state=1), refs).valid
    )
    one = parts.parquet_bytes(frame, parts.FLIGHTS_SCHEMA)
    two = parts.parquet_bytes(shuffled, parts.FLIGHTS_SCHEMA)
    assert one == two  # row order of the source does not matter
    back = _read(one)
    pd.testing.assert_frame_equal(back, frame)
    changed = frame.copy()
    changed.loc[0, "arr_delay"] = 99.0
    assert parts.md5(parts.parquet_bytes(changed, parts.FLIGHTS_SCHEMA)) != parts.md5(one)


def test_weather_and_planes_partitions(real_tables: dict[str, pd.DataFrame]) -> None:
    weather = parts.weather_frame(validate(WEATHER, real_tables["weather"].head(100)).valid)
    assert list(weather.columns) == parts.WEATHER_SCHEMA.names
    assert str(weather["time_hour"].dt.tz) == "UTC"
    planes = parts.planes_frame(validate(PLANES, real_tables["planes"]).valid)
    assert list(planes.columns) == parts.PLANES_SCHEMA.names
    assert planes["plane_year"].isna().sum() == 70
    back = _read(parts.parquet_bytes(planes, parts.PLANES_SCHEMA))
    assert str(back["plane_year"].dtype) == "Int64"
    pd.testing.assert_frame_equal(back, planes)


def test_quarantine_parquet_roundtrip(
    jan_flights: pd.DataFrame, refs: dict[str, frozenset[str]]
) -> None:
    jan_flights["distance"] = jan_flights["distance"].astype(object)
    jan_flights.iloc[0, jan_flights.columns.get_loc("distance")] = "far"
    quarantine = validate(FLIGHTS, jan_flights, refs).quarantine
    back = _read(parts.quarantine_bytes(quarantine))
    assert back.loc[0, "distance"] == "far"
    assert back.loc[0, "reason"] == "distance=far is not a number"
    assert back.loc[0, "source_row"] == jan_flights.index[0]
    empty = _read(parts.quarantine_bytes(quarantine.iloc[0:0]))
    assert list(empty.columns) == list(back.columns)
    assert len(empty) == 0


def test_paths_and_keys() -> None:
    assert parts.partition_path("flights", "2013-01") == "flights/2013-01.parquet"
    assert parts.partition_path("planes", None) == "planes/planes.parquet"
    assert parts.quarantine_path("weather", "2013-02") == "quarantine/weather-2013-02.parquet"
    assert parts.partition_key("flights", "2013-01") == "flights/2013-01"
