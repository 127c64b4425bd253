"""The declared data contract of the raw tables: one :class:`Column` per column (type, nullability,
range, allowed codes, format) plus row rules and a unique key per table.

The contract is data, not code paths: :func:`driftloop.data.validation.validate` applies any
:class:`Contract`; :meth:`Contract.describe` renders it for people (``driftloop data-contract``).

Decisions taken against the real data (all 336,776 flights pass; see tests/unit/data):
- ``dest`` is checked for format (three capital letters), not against ``airports.csv``: four real
  destinations (BQN, SJU, STT, PSE — Puerto Rico and the Virgin Islands, 7,602 flights) are
  missing from that table.
- ``tailnum`` may be missing only for flights that never departed (``dep_time`` missing); every
  real flight that departed has one.
- ``carrier`` must appear in ``airlines.csv`` (the reference ``airlines.carrier``).
- A duplicate flight key keeps the FIRST row (in file order) among rows that pass every other
  check; each later row with the same key is quarantined. Rows already invalid for another reason
  do not claim a key.
- Weather: one real reading (EWR 2013-02-12 03:00, wind_speed 1048 mph) breaks the physical
  range and is quarantined — a sensor error, not a rule tuned away.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from driftloop.schema import LOCAL_TZ

ColumnType = Literal["int", "float", "str", "timestamp", "hhmm"]
ORIGINS = frozenset({"EWR", "JFK", "LGA"})


@dataclass(frozen=True)
class Column:
    """One declared column. ``hhmm`` is a clock time as an integer 0..2400 with minutes < 60."""

    name: str
    type: ColumnType
    nullable: bool = False
    min: float | None = None
    max: float | None = None
    allowed: frozenset[str] | None = None
    #: Name of a reference set resolved at validation time, e.g. "airlines.carrier".
    allowed_from: str | None = None
    pattern: str | None = None
    description: str = ""


@dataclass(frozen=True)
class RowRule:
    """A rule across columns. ``violated(df)`` gets the type-coerced frame (invalid cells are
    missing) and returns True where a row breaks the rule; it must skip rows whose inputs are
    missing (the column checks report those)."""

    name: str
    message: str
    violated: Callable[[pd.DataFrame], pd.Series]


@dataclass(frozen=True)
class Contract:
    """The contract of one raw table."""

    table: str
    columns: tuple[Column, ...]
    rules: tuple[RowRule, ...] = ()
    #: Name of the unique key and how to build it from the coerced frame (None: no key).
    key_name: str | None = None
    key: Callable[[pd.DataFrame], pd.Series] | None = None
    references: tuple[str, ...] = field(default=())

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)

    def describe(self) -> list[dict[str, Any]]:
        """The contract as rows for people: one per column, then one per rule."""
        rows: list[dict[str, Any]] = []
        for c in self.columns:
            allowed = sorted(c.allowed) if c.allowed else (c.allowed_from or "")
            rows.append(
                {
                    "table": self.table,
                    "check": c.name,
                    "type": c.type,
                    "nullable": c.nullable,
                    "min": c.min,
                    "max": c.max,
                    "allowed": allowed,
                    "pattern": c.pattern or "",
                    "description": c.description,
                }
            )
        for r in self.rules:
            rows.append({"table": self.table, "check": r.name, "description": r.message})
        if self.key_name:
            rows.append(
                {
                    "table": self.table,
                    "check": f"unique {self.key_name}",
                    "description": "first kept",
                }
            )
        return rows


def _minutes(hhmm: pd.Series) -> pd.Series:
    return (hhmm // 100) * 60 + hhmm % 100


def _local_parts_mismatch(df: pd.DataFrame) -> pd.Series:
    """time_hour (UTC) is not the local year/month/day/hour of the row."""
    parts = ["year", "month", "day", "hour", "time_hour"]
    known = df[parts].notna().all(axis=1)
    local = df["time_hour"].dt.tz_convert(LOCAL_TZ)
    same = (
        (local.dt.year == df["year"])
        & (local.dt.month == df["month"])
        & (local.dt.day == df["day"])
        & (local.dt.hour == df["hour"])
    )
    return known & ~same


def _sched_mismatch(df: pd.DataFrame) -> pd.Series:
    known = df[["sched_dep_time", "hour", "minute"]].notna().all(axis=1)
    return known & (df["sched_dep_time"] != df["hour"] * 100 + df["minute"])


def _tailnum_missing_after_departure(df: pd.DataFrame) -> pd.Series:
    return df["dep_time"].notna() & df["tailnum"].isna()


def _dep_delay_mismatch(df: pd.DataFrame) -> pd.Series:
    one_missing = df["dep_time"].isna() != df["dep_delay"].isna()
    known = df[["dep_time", "sched_dep_time", "dep_delay"]].notna().all(axis=1)
    diff = _minutes(df["dep_time"]) - _minutes(df["sched_dep_time"]) - df["dep_delay"]
    return one_missing | (known & (diff % 1440 != 0))


def _arr_delay_mismatch(df: pd.DataFrame) -> pd.Series:
    delay_without_arrival = df["arr_delay"].notna() & df["arr_time"].isna()
    known = df[["arr_time", "sched_arr_time", "arr_delay"]].notna().all(axis=1)
    diff = _minutes(df["arr_time"]) - _minutes(df["sched_arr_time"]) - df["arr_delay"]
    return delay_without_arrival | (known & (diff % 1440 != 0))


def _arrival_without_departure(df: pd.DataFrame) -> pd.Series:
    return (df["arr_time"].notna() & df["dep_time"].isna()) | (
        df["air_time"].notna() != df["arr_delay"].notna()
    )


def flight_key(df: pd.DataFrame) -> pd.Series:
    """``{carrier}{flight}-{origin}-{YYYYmmddHHMM local scheduled departure}`` per row."""
    return (
        df["carrier"].astype(str)
        + df["flight"].astype("int64").astype(str)
        + "-"
        + df["origin"].astype(str)
        + "-"
        + local_stamp(df).astype(str)
    )


def local_stamp(df: pd.DataFrame) -> pd.Series:
    """YYYYmmddHHMM of the local scheduled departure as an integer (year has 4 digits)."""
    parts = df[["year", "month", "day", "hour", "minute"]].astype("int64")
    return (
        parts["year"] * 100_000_000
        + parts["month"] * 1_000_000
        + parts["day"] * 10_000
        + parts["hour"] * 100
        + parts["minute"]
    )


def weather_key(df: pd.DataFrame) -> pd.Series:
    return df["origin"].astype(str) + "@" + df["time_hour"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def planes_key(df: pd.DataFrame) -> pd.Series:
    return df["tailnum"].astype(str)


_TAILNUM = r"[A-Z0-9]{2,6}"
_AIRPORT = r"[A-Z0-9]{3}"

FLIGHTS = Contract(
    table="flights",
    columns=(
        Column("year", "int", min=1900, max=2100, description="Local year of scheduled departure."),
        Column("month", "int", min=1, max=12),
        Column("day", "int", min=1, max=31),
        Column(
            "dep_time",
            "hhmm",
            nullable=True,
            min=0,
            max=2400,
            description="Missing when cancelled.",
        ),
        Column("sched_dep_time", "hhmm", min=0, max=2359),
        Column("dep_delay", "float", nullable=True, min=-180, max=2880, description="Minutes."),
        Column("arr_time", "hhmm", nullable=True, min=0, max=2400),
        Column("sched_arr_time", "hhmm", min=0, max=2359),
        Column("arr_delay", "float", nullable=True, min=-240, max=2880, description="Minutes."),
        Column("carrier", "str", allowed_from="airlines.carrier", pattern=r"[A-Z0-9]{2}"),
        Column("flight", "int", min=1, max=9999),
        Column(
            "tailnum", "str", nullable=True, pattern=_TAILNUM, description="Required once departed."
        ),
        Column("origin", "str", allowed=ORIGINS),
        Column("dest", "str", pattern=_AIRPORT, description="Format only (airports.csv lacks 4)."),
        Column("air_time", "float", nullable=True, min=1, max=1000, description="Minutes."),
        Column("distance", "float", min=1, max=6000, description="Miles."),
        Column("hour", "int", min=0, max=23),
        Column("minute", "int", min=0, max=59),
        Column("time_hour", "timestamp", description="UTC hour of scheduled departure."),
    ),
    rules=(
        RowRule(
            "tailnum_when_departed",
            "tailnum is missing for a flight that departed (dep_time is set)",
            _tailnum_missing_after_departure,
        ),
        RowRule(
            "schedule_matches_hour_minute",
            "sched_dep_time differs from hour*100+minute",
            _sched_mismatch,
        ),
        RowRule(
            "time_hour_matches_local_date",
            "time_hour is not the local year/month/day/hour of the row",
            _local_parts_mismatch,
        ),
        RowRule(
            "dep_delay_matches_times",
            "dep_delay does not match dep_time - sched_dep_time",
            _dep_delay_mismatch,
        ),
        RowRule(
            "arr_delay_matches_times",
            "arr_delay does not match arr_time - sched_arr_time",
            _arr_delay_mismatch,
        ),
        RowRule(
            "arrival_after_departure",
            "arrival recorded without a departure (or air_time without arr_delay)",
            _arrival_without_departure,
        ),
    ),
    key_name="flight_id",
    key=flight_key,
    references=("airlines.carrier",),
)

WEATHER = Contract(
    table="weather",
    columns=(
        Column("origin", "str", allowed=ORIGINS),
        Column("year", "int", min=1900, max=2100),
        Column("month", "int", min=1, max=12),
        Column("day", "int", min=1, max=31),
        Column("hour", "int", min=0, max=23),
        Column("temp", "float", nullable=True, min=-40, max=130, description="Fahrenheit."),
        Column("dewp", "float", nullable=True, min=-60, max=100, description="Fahrenheit."),
        Column("humid", "float", nullable=True, min=0, max=100, description="Percent."),
        Column("wind_dir", "float", nullable=True, min=0, max=360, description="Degrees."),
        Column("wind_speed", "float", nullable=True, min=0, max=200, description="mph."),
        Column("wind_gust", "float", nullable=True, min=0, max=250, description="mph."),
        Column("precip", "float", min=0, max=10, description="Inches."),
        Column("pressure", "float", nullable=True, min=900, max=1100, description="Millibars."),
        Column("visib", "float", min=0, max=10, description="Miles."),
        Column("time_hour", "timestamp", description="UTC hour."),
    ),
    rules=(
        RowRule(
            "time_hour_matches_local_date",
            "time_hour is not the local year/month/day/hour of the row",
            _local_parts_mismatch,
        ),
    ),
    key_name="origin@time_hour",
    key=weather_key,
)

PLANES = Contract(
    table="planes",
    columns=(
        Column("tailnum", "str", pattern=_TAILNUM),
        Column("year", "int", nullable=True, min=1900, max=2100, description="Year built."),
        Column("type", "str"),
        Column("manufacturer", "str", nullable=True),
        Column("model", "str", nullable=True),
        Column("engines", "int", min=1, max=8),
        Column("seats", "int", min=1, max=1000),
        Column("speed", "float", nullable=True, min=0, max=1000),
        Column("engine", "str", nullable=True),
    ),
    key_name="tailnum",
    key=planes_key,
)

CONTRACTS = {c.table: c for c in (FLIGHTS, WEATHER, PLANES)}


def reference_sets(tables: dict[str, pd.DataFrame]) -> dict[str, frozenset[str]]:
    """Reference code sets named ``table.column`` from the given raw tables."""
    refs: dict[str, frozenset[str]] = {}
    if "airlines" in tables:
        refs["airlines.carrier"] = frozenset(tables["airlines"]["carrier"].dropna().astype(str))
    if "airports" in tables:
        refs["airports.faa"] = frozenset(tables["airports"]["faa"].dropna().astype(str))
    return refs


def is_integral(values: pd.Series) -> pd.Series:
    """True where a float value is a whole number (missing counts as whole)."""
    arr = values.to_numpy(dtype="float64", na_value=np.nan)
    return pd.Series(np.isnan(arr) | (np.floor(arr) == arr), index=values.index)
