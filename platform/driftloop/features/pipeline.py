"""The feature pipeline: pure functions from ingested partitions to Feast source tables.

Each function takes the frames of :mod:`driftloop.data` (flights, weather, planes) and returns
one offline source table of the feature repo: entity join keys, ``event_timestamp`` (tz-aware
UTC: the moment the value became known) and the feature columns of :mod:`driftloop.schema`.
No Feast here: these are tested alone and written to parquet by
:func:`driftloop.features.store.build_sources`.

Point-in-time rules (Feast's historical retrieval then takes, per flight, the latest row with
``event_timestamp <= scheduled_departure`` within the view's ttl):

- weather is stamped at its observation hour ``time_hour``;
- plane attributes are static registry data, stamped once at ``as_of`` (start of the data set);
- the carrier x origin aggregates are stamped daily at local (New York) midnight ``D 00:00`` and
  use only flights whose outcome was known before ``D``: a flight's outcome is known at
  ``scheduled_departure + dep_delay + air_time + OUTCOME_BUFFER`` (taxi-in and a margin), and the
  window is the 7 days before ``D``. Day ``D``'s own flights are never in ``D``'s value.
"""

from __future__ import annotations

from datetime import timedelta

import pandas as pd

from driftloop.errors import InvalidInputError
from driftloop.schema import (
    CARRIER_ORIGIN_FEATURES,
    EVENT_TIMESTAMP,
    LABEL,
    LOCAL_TZ,
    PLANE_FEATURES,
    WEATHER_FEATURES,
)

#: Added to departure + air time to get the moment a flight's arrival (its label) is known.
OUTCOME_BUFFER = timedelta(minutes=60)
#: Length of the aggregate window.
WINDOW_DAYS = 7

WEATHER_COLUMNS = ["origin", EVENT_TIMESTAMP, *WEATHER_FEATURES]
PLANE_COLUMNS = ["tailnum", EVENT_TIMESTAMP, *PLANE_FEATURES]
CARRIER_ORIGIN_COLUMNS = ["carrier", "origin", EVENT_TIMESTAMP, *CARRIER_ORIGIN_FEATURES]


def _require(df: pd.DataFrame, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise InvalidInputError(f"{what} frame lacks columns {missing}")


def _utc(series: pd.Series) -> pd.Series:
    ts = pd.to_datetime(series)
    if ts.dt.tz is None:
        return ts.dt.tz_localize("UTC")
    return ts.dt.tz_convert("UTC")


def build_weather_features(weather: pd.DataFrame) -> pd.DataFrame:
    """Origin weather by hour, stamped at the observation hour (one row per origin and hour)."""
    _require(weather, ["origin", "time_hour", *WEATHER_FEATURES], "weather")
    out = pd.DataFrame(
        {
            "origin": weather["origin"].astype(str),
            EVENT_TIMESTAMP: _utc(weather["time_hour"]).astype("datetime64[ns, UTC]"),
        }
    )
    for col in WEATHER_FEATURES:
        out[col] = pd.to_numeric(weather[col], errors="coerce").astype("float64")
    out = out.dropna(subset=[EVENT_TIMESTAMP])
    out = out.drop_duplicates(["origin", EVENT_TIMESTAMP], keep="last")
    return out.sort_values([EVENT_TIMESTAMP, "origin"]).reset_index(drop=True)[WEATHER_COLUMNS]


def build_plane_features(planes: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """Plane attributes by tailnum, stamped once at ``as_of`` (static registry data)."""
    _require(planes, ["tailnum", *PLANE_FEATURES], "planes")
    stamp = pd.Timestamp(as_of)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    out = pd.DataFrame({"tailnum": planes["tailnum"].astype("string")})
    out[EVENT_TIMESTAMP] = stamp
    out[EVENT_TIMESTAMP] = out[EVENT_TIMESTAMP].astype("datetime64[ns, UTC]")
    for col in ("plane_year", "seats", "engines"):
        out[col] = pd.to_numeric(planes[col], errors="coerce").astype("float64").values
    out["plane_type"] = planes["plane_type"].astype("string").values
    out = out.dropna(subset=["tailnum"]).drop_duplicates("tailnum", keep="last")
    out["tailnum"] = out["tailnum"].astype(str)
    out["plane_type"] = out["plane_type"].astype(object).where(out["plane_type"].notna(), None)
    return out.sort_values("tailnum").reset_index(drop=True)[PLANE_COLUMNS]


def outcome_known_at(flights: pd.DataFrame) -> pd.Series:
    """When each flight's outcome (arrival, hence the label) is known; NaT when it never is."""
    dep = _utc(flights["scheduled_departure"])
    dep_delay = pd.to_numeric(flights["dep_delay"], errors="coerce")
    air_time = pd.to_numeric(flights["air_time"], errors="coerce")
    minutes = (dep_delay + air_time).astype("float64")
    known = dep + pd.to_timedelta(minutes, unit="min") + OUTCOME_BUFFER
    # Never earlier than the scheduled departure (early departures, odd air times).
    known = known.where(known.isna() | (known >= dep), dep)
    label = flights[LABEL] if LABEL in flights.columns else pd.Series(pd.NA, index=flights.index)
    return known.where(label.notna())


def _empty_carrier_origin() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "carrier": pd.Series(dtype=object),
            "origin": pd.Series(dtype=object),
            EVENT_TIMESTAMP: pd.Series(dtype="datetime64[ns, UTC]"),
            "late_rate_7d": pd.Series(dtype="float64"),
            "mean_dep_delay_7d": pd.Series(dtype="float64"),
            "flights_7d": pd.Series(dtype="int64"),
        }
    )[CARRIER_ORIGIN_COLUMNS]


def build_carrier_origin_features(flights: pd.DataFrame) -> pd.DataFrame:
    """Daily carrier x origin aggregates over the previous 7 days, from the past only.

    The row stamped at local midnight ``D`` aggregates flights whose outcome became known in
    ``[D - 7 days, D)``: ``late_rate_7d`` (share late), ``mean_dep_delay_7d`` (minutes) and
    ``flights_7d`` (count). Days without such flights get no row (the view's ttl then expires).
    Stamps stop at the horizon of the data: the local midnight after the day of the latest
    scheduled departure in ``flights`` (later days would miss flights not ingested yet).
    """
    _require(
        flights,
        ["carrier", "origin", "scheduled_departure", "dep_delay", "air_time", LABEL],
        "flights",
    )
    known = outcome_known_at(flights)
    ok = known.notna()
    if not ok.any():
        return _empty_carrier_origin()
    local_day = known[ok].dt.tz_convert(LOCAL_TZ).dt.tz_localize(None).dt.normalize()
    dep_delay = pd.to_numeric(flights.loc[ok, "dep_delay"], errors="coerce").astype("float64")
    base = pd.DataFrame(
        {
            "carrier": flights.loc[ok, "carrier"].astype(str).values,
            "origin": flights.loc[ok, "origin"].astype(str).values,
            # First stamp D (local midnight) that may use the flight: the midnight after it.
            "day": (local_day + pd.Timedelta(days=1)).values,
            "n": 1,
            "late": pd.to_numeric(flights.loc[ok, LABEL]).astype("float64").values,
            "delay_sum": dep_delay.fillna(0.0).values,
            "delay_n": dep_delay.notna().astype("float64").values,
        }
    )
    last_dep = _utc(flights["scheduled_departure"]).max().tz_convert(LOCAL_TZ).tz_localize(None)
    horizon = last_dep.normalize() + pd.Timedelta(days=1)
    base = base[base["day"] <= horizon]
    if base.empty:
        return _empty_carrier_origin()
    daily = base.groupby(["carrier", "origin", "day"])[["n", "late", "delay_sum", "delay_n"]].sum()
    days = pd.date_range(daily.index.get_level_values("day").min(), horizon, freq="D")
    frames = []
    for (carrier, origin), grp in daily.groupby(level=["carrier", "origin"]):
        g = grp.droplevel(["carrier", "origin"]).reindex(days, fill_value=0.0)
        # Window of stamp D: buckets D-6 .. D, i.e. outcomes known in [D - 7 days, D).
        w = g.rolling(WINDOW_DAYS, min_periods=1).sum()
        w = w[w["n"] > 0]
        frames.append(
            pd.DataFrame(
                {
                    "carrier": carrier,
                    "origin": origin,
                    "local_day": w.index,
                    "late_rate_7d": (w["late"] / w["n"]).values,
                    "mean_dep_delay_7d": (
                        w["delay_sum"] / w["delay_n"].where(w["delay_n"] > 0)
                    ).values,
                    "flights_7d": w["n"].round().astype("int64").values,
                }
            )
        )
    out = pd.concat(frames, ignore_index=True)
    out[EVENT_TIMESTAMP] = (
        pd.DatetimeIndex(out["local_day"])
        .tz_localize(LOCAL_TZ, ambiguous=False, nonexistent="shift_forward")
        .tz_convert("UTC")
        .astype("datetime64[ns, UTC]")
    )
    out = out.sort_values([EVENT_TIMESTAMP, "carrier", "origin"]).reset_index(drop=True)
    return out[CARRIER_ORIGIN_COLUMNS]
