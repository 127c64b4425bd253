"""Model rows from decoded requests, on the request path (so: few pandas operations).

Flight mode derives ``dep_hour`` / ``day_of_week`` exactly as
:func:`driftloop.features.request.add_request_features` does (local New York time of the
scheduled departure; naive = UTC). Small requests take a pure-Python path
(``datetime.fromisoformat`` + zoneinfo, a few µs per row, tested for parity with the pandas
function); anything it cannot parse goes through the pandas parser
(:func:`driftloop.features.request.scheduled_departure_utc`). Departures must lie in
[:data:`EARLIEST`, :data:`LATEST`) UTC: a value outside (year 1, year 9999) or one that does not
parse is a 400 naming the input and the row, on either path (the capture stores nanosecond
timestamps, which end in 2262). Features come from the online store via
:class:`serving.features.FeatureLookup`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from driftloop.errors import InvalidInputError
from driftloop.features.request import scheduled_departure_utc
from driftloop.schema import EVENT_TIMESTAMP, FEATURE_COLUMNS, LOCAL_TZ, MODEL_INPUT_COLUMNS
from serving import codec
from serving.features import FeatureLookup

_LOCAL = ZoneInfo(LOCAL_TZ)
#: Requests up to this many rows derive request features in pure Python.
FAST_ROWS = 64
#: Accepted departures (UTC): [EARLIEST, LATEST).
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
_EARLIEST_TS, _LATEST_TS = pd.Timestamp(EARLIEST), pd.Timestamp(LATEST)


def _out_of_range(name: str, row: int, value: Any) -> InvalidInputError:
    return InvalidInputError(
        f"input {name!r} holds {str(value)[:40]!r} at row {row}: a date from "
        f"{EARLIEST.year} to {LATEST.year - 1} (ISO-8601) is needed"
    )


def _parse_fast(values: list[Any], name: str) -> list[datetime] | None:
    """UTC departures, or None when a value needs the pandas parser."""
    out = []
    for i, v in enumerate(values):
        if type(v) is not str:
            return None
        try:
            ts = datetime.fromisoformat(v)
            utc = ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)
        except ValueError:
            return None
        except OverflowError:  # an offset moved it past year 1 or 9999
            raise _out_of_range(name, i, v) from None
        if not EARLIEST <= utc < LATEST:
            raise _out_of_range(name, i, v)
        out.append(utc)
    return out


def _parse_pandas(values: list[Any], name: str) -> pd.Series:
    """UTC departures through the pandas parser (any format it knows); 400 naming the first
    row that does not parse or lies out of range."""
    series = pd.Series(values, dtype=object)
    try:
        utc = scheduled_departure_utc(series)
    except (InvalidInputError, ValueError, TypeError, OverflowError):
        bad = _first_unparsed(series)
        raise _out_of_range(name, bad, values[bad]) from None
    outside = ((utc < _EARLIEST_TS) | (utc >= _LATEST_TS)).to_numpy()
    if outside.any():
        bad = int(outside.argmax())
        raise _out_of_range(name, bad, values[bad])
    return utc


def _first_unparsed(series: pd.Series) -> int:
    """The first row neither ISO-8601 nor any other format pandas reads (out of range
    included): the row named by the error."""
    failed = np.ones(len(series), dtype=bool)
    for fmt in ("ISO8601", "mixed"):
        try:
            parsed = pd.to_datetime(series, utc=True, format=fmt, errors="coerce")
        except (ValueError, TypeError, OverflowError):
            continue
        failed &= parsed.isna().to_numpy()
    return int(failed.argmax()) if failed.any() else 0


def departures(
    values: list[Any], name: str = "scheduled_departure"
) -> tuple[list[datetime], np.ndarray, np.ndarray]:
    """(UTC departures, dep_hour, day_of_week) of the departures in input ``name``; dep_hour
    and day_of_week in local New York time, as ``add_request_features`` derives them."""
    fast = _parse_fast(values, name) if len(values) <= FAST_ROWS else None
    if fast is not None:
        local = [ts.astimezone(_LOCAL) for ts in fast]
        hours = np.fromiter((t.hour for t in local), dtype=np.float64, count=len(local))
        days = np.fromiter((t.weekday() for t in local), dtype=np.float64, count=len(local))
        return fast, hours, days
    utc = _parse_pandas(values, name)
    local = utc.dt.tz_convert(LOCAL_TZ)
    return (
        utc.tolist(),
        local.dt.hour.to_numpy(dtype=np.float64),
        local.dt.dayofweek.to_numpy(dtype=np.float64),
    )


@dataclass(frozen=True)
class Rows:
    """The model input of one request: ``frame`` for the model, the same ``columns`` as
    lists/arrays for the capture writer (no DataFrame access off the model path), and the
    scheduled departures in UTC when the request carried them."""

    columns: dict[str, Any]
    event_ts: list[Any] | None

    @property
    def frame(self) -> pd.DataFrame:
        """The rows as a DataFrame, built when asked (models other than driftloop's own):
        driftloop's models read ``columns`` directly, a DataFrame per request costs more
        than the model."""
        return pd.DataFrame(self.columns)

    def __len__(self) -> int:
        return len(self.columns[MODEL_INPUT_COLUMNS[0]])


def model_rows(decoded: codec.Decoded, features: FeatureLookup) -> Rows:
    """Model input rows (MODEL_INPUT_COLUMNS) and scheduled departures (UTC, when known)."""
    cols = decoded.columns
    if decoded.mode == codec.FEATURES:
        data = {c: cols[c] for c in MODEL_INPUT_COLUMNS}
        name = "scheduled_departure" if "scheduled_departure" in cols else EVENT_TIMESTAMP
        when = cols.get(name)
        if when is None or any(v is None for v in when):
            return Rows(data, None)
        return Rows(data, departures(when, name)[0])
    utc, hours, days = departures(cols["scheduled_departure"])
    found = features.lookup(
        {"carrier": cols["carrier"], "origin": cols["origin"], "tailnum": cols["tailnum"]}
    )
    data = {
        "carrier": cols["carrier"],
        "origin": cols["origin"],
        "dest": cols["dest"],
        "distance": cols["distance"],
        "dep_hour": hours,
        "day_of_week": days,
    }
    for c in FEATURE_COLUMNS:  # a value sent with the request overrides the stored one
        data[c] = cols[c] if c in cols else found[c]
    ordered = {c: data[c] for c in MODEL_INPUT_COLUMNS}
    return Rows(ordered, utc)
