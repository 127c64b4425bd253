"""Features derived from the request fields of a flight, and the one dtype of every feature
column (training, the online store and serving share this)."""

from __future__ import annotations

import pandas as pd

from driftloop.errors import InvalidInputError
from driftloop.schema import FEATURE_COLUMNS, LOCAL_TZ


def scheduled_departure_utc(values: pd.Series) -> pd.Series:
    """Parse scheduled departures to tz-aware UTC; naive values are taken as UTC.

    Raises :class:`InvalidInputError` naming the first value that does not parse.
    """
    # utc=True: offsets are converted, naive values are taken as UTC.
    try:
        ts = pd.to_datetime(values, utc=True, format="ISO8601")
    except (ValueError, TypeError):
        try:
            ts = pd.to_datetime(values, utc=True, format="mixed")
        except (ValueError, TypeError) as err:
            raise InvalidInputError(f"scheduled_departure does not parse: {err}") from None
    if ts.isna().any():
        raise InvalidInputError("scheduled_departure is missing in some rows")
    return ts


def add_request_features(df: pd.DataFrame) -> pd.DataFrame:
    """Return a copy of ``df`` with ``dep_hour`` (0-23) and ``day_of_week`` (Monday=0), both in
    local New York time of ``scheduled_departure`` (tz-aware, ISO string, or naive = UTC)."""
    if "scheduled_departure" not in df.columns:
        raise InvalidInputError("request rows lack the field 'scheduled_departure'")
    out = df.copy()
    local = scheduled_departure_utc(out["scheduled_departure"]).dt.tz_convert(LOCAL_TZ)
    out["dep_hour"] = local.dt.hour.astype("int64").values
    out["day_of_week"] = local.dt.dayofweek.astype("int64").values
    return out


def normalize_features(df: pd.DataFrame) -> pd.DataFrame:
    """Feature columns in place with one dtype everywhere (training, online, parity): numeric
    features float64 (missing = NaN), ``plane_type`` object (missing = None)."""
    for col in FEATURE_COLUMNS:
        if col == "plane_type":
            values = df[col].astype(object)
            df[col] = values.where(values.notna(), None)
        else:
            df[col] = pd.to_numeric(df[col], errors="coerce").astype("float64")
    return df
