"""Raw validated rows -> partition frames with the documented columns, written as deterministic
parquet (identical input gives identical bytes, so an unchanged month keeps its DVC hash).

Layout inside the data repo (``{state}/datarepo``)::

    flights/2013-01.parquet            one partition per month (local month of scheduled departure)
    weather/2013-01.parquet            one partition per month (local month of the hour)
    planes/planes.parquet              the whole table
    quarantine/flights-2013-01.parquet invalid rows (raw values as text, source_row, reason)
    quarantine/weather-2013-01.parquet
    quarantine/planes.parquet
    profiles/flights-2013-01.json      the partition's profile (driftloop.data.profile); small
    profiles/weather-2013-01.json      JSON kept in git, not DVC, so any revision's profile reads
    profiles/planes.json               in milliseconds (``git show``) and diffs as text
"""

from __future__ import annotations

import hashlib
from typing import Literal

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from driftloop.data.contract import flight_key
from driftloop.schema import FLIGHT_KEY, LABEL, LATE_THRESHOLD_MIN, WEATHER_FEATURES

Kind = Literal["flights", "weather", "planes"]
KINDS: tuple[Kind, ...] = ("flights", "weather", "planes")

_UTC_NS = pa.timestamp("ns", tz="UTC")

FLIGHTS_SCHEMA = pa.schema(
    [
        (FLIGHT_KEY, pa.string()),
        ("carrier", pa.string()),
        ("flight", pa.int64()),
        ("tailnum", pa.string()),
        ("origin", pa.string()),
        ("dest", pa.string()),
        ("distance", pa.float64()),
        ("scheduled_departure", _UTC_NS),
        ("dep_delay", pa.float64()),
        ("arr_delay", pa.float64()),
        ("air_time", pa.float64()),
        (LABEL, pa.int8()),
    ]
)
WEATHER_SCHEMA = pa.schema(
    [("origin", pa.string()), ("time_hour", _UTC_NS)]
    + [(name, pa.float64()) for name in WEATHER_FEATURES]
)
PLANES_SCHEMA = pa.schema(
    [
        ("tailnum", pa.string()),
        ("plane_year", pa.int64()),
        ("plane_type", pa.string()),
        ("seats", pa.int64()),
        ("engines", pa.int64()),
    ]
)
SCHEMAS: dict[str, pa.Schema] = {
    "flights": FLIGHTS_SCHEMA,
    "weather": WEATHER_SCHEMA,
    "planes": PLANES_SCHEMA,
}


def partition_path(kind: str, month: str | None) -> str:
    """Path of a partition relative to the data repo."""
    return "planes/planes.parquet" if kind == "planes" else f"{kind}/{month}.parquet"


def quarantine_path(kind: str, month: str | None) -> str:
    """Path of a quarantine file relative to the data repo."""
    return "quarantine/planes.parquet" if kind == "planes" else f"quarantine/{kind}-{month}.parquet"


def profile_path(kind: str, month: str | None) -> str:
    """Path of a partition's profile (git-tracked JSON) relative to the data repo."""
    return "profiles/planes.json" if kind == "planes" else f"profiles/{kind}-{month}.json"


def partition_key(kind: str, month: str | None) -> str:
    """Lineage key of a partition: ``flights/2013-01``, ``weather/2013-01``, ``planes/planes``."""
    return partition_path(kind, month).removesuffix(".parquet")


def _text(values: pd.Series) -> pd.Series:
    return values.astype(object).where(values.notna(), None)


def flights_frame(valid: pd.DataFrame) -> pd.DataFrame:
    """Validated raw flights -> the flights partition (sorted by departure, then key)."""
    arr_delay = valid["arr_delay"]
    is_late = (arr_delay > LATE_THRESHOLD_MIN).astype("Int8").mask(arr_delay.isna())
    out = pd.DataFrame(
        {
            FLIGHT_KEY: _text(flight_key(valid)),
            "carrier": _text(valid["carrier"]),
            "flight": valid["flight"].astype("int64"),
            "tailnum": _text(valid["tailnum"]),
            "origin": _text(valid["origin"]),
            "dest": _text(valid["dest"]),
            "distance": valid["distance"].astype("float64"),
            "scheduled_departure": valid["time_hour"]
            + pd.to_timedelta(valid["minute"], unit="min"),
            "dep_delay": valid["dep_delay"].astype("float64"),
            "arr_delay": arr_delay.astype("float64"),
            "air_time": valid["air_time"].astype("float64"),
            LABEL: is_late.astype("Int8"),
        }
    )
    return out.sort_values(["scheduled_departure", FLIGHT_KEY], kind="stable").reset_index(
        drop=True
    )


def weather_frame(valid: pd.DataFrame) -> pd.DataFrame:
    """Validated raw weather -> the weather partition (sorted by hour, then origin)."""
    out = pd.DataFrame({"origin": _text(valid["origin"]), "time_hour": valid["time_hour"]})
    for name in WEATHER_FEATURES:
        out[name] = valid[name].astype("float64")
    return out.sort_values(["time_hour", "origin"], kind="stable").reset_index(drop=True)


def planes_frame(valid: pd.DataFrame) -> pd.DataFrame:
    """Validated raw planes -> the planes partition (sorted by tail number)."""
    out = pd.DataFrame(
        {
            "tailnum": _text(valid["tailnum"]),
            "plane_year": valid["year"].astype("Int64"),
            "plane_type": _text(valid["type"]),
            "seats": valid["seats"].astype("Int64"),
            "engines": valid["engines"].astype("Int64"),
        }
    )
    return out.sort_values("tailnum", kind="stable").reset_index(drop=True)


def parquet_bytes(frame: pd.DataFrame, schema: pa.Schema | None = None) -> bytes:
    """The frame as parquet bytes, deterministic for equal frames (fixed schema, no index,
    one row group, snappy). The pandas metadata keeps nullable Int dtypes on read."""
    table = pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="snappy", row_group_size=max(len(frame), 1))
    return bytes(sink.getvalue().to_pybytes())


def quarantine_bytes(quarantine: pd.DataFrame) -> bytes:
    """Quarantine rows as parquet: raw values as text, ``source_row`` and ``reason``."""
    frame = quarantine.copy()
    for name in frame.columns:
        if name != "source_row":
            frame[name] = _text(frame[name])
    frame["source_row"] = frame["source_row"].astype("int64")
    schema = pa.schema(
        [(n, pa.int64() if n == "source_row" else pa.string()) for n in frame.columns]
    )
    return parquet_bytes(frame.reset_index(drop=True), schema)


def md5(data: bytes) -> str:
    """The md5 DVC records for a file with these bytes."""
    return hashlib.md5(data, usedforsecurity=False).hexdigest()
