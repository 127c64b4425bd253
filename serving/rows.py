"""Model rows from decoded requests, on the request path (so: few pandas operations).

Flight mode derives ``dep_hour`` / ``day_of_week`` exactly as
:func:`driftloop.features.request.add_request_features` does (local New York time of the
scheduled departure; naive = UTC). Small requests take a pure-Python path
(``datetime.fromisoformat`` + zoneinfo, a few µs per row, tested for parity with the pandas
function); anything it cannot parse goes through the pandas function, which also produces the
error message. Features come from the online store via :class:`serving.features.FeatureLookup`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from driftloop.features.request import add_request_features, scheduled_departure_utc
from driftloop.schema import EVENT_TIMESTAMP, FEATURE_COLUMNS, LOCAL_TZ, MODEL_INPUT_COLUMNS
from serving import codec
from serving.features import FeatureLookup

_LOCAL = ZoneInfo(LOCAL_TZ)
#: Requests up to this many rows derive request features in pure Python.
FAST_ROWS = 64


def _parse_fast(values: list[Any]) -> list[datetime] | None:
    out = []
    for v in values:
        if type(v) is not str:
            return None
        try:
            ts = datetime.fromisoformat(v)
        except ValueError:
            return None
        out.append(ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC))
    return out


def departures(values: list[Any]) -> tuple[list[datetime], np.ndarray, np.ndarray]:
    """(UTC departures, dep_hour, day_of_week) of scheduled_departure values."""
    fast = _parse_fast(values) if len(values) <= FAST_ROWS else None
    if fast is not None:
        local = [ts.astimezone(_LOCAL) for ts in fast]
        hours = np.fromiter((t.hour for t in local), dtype=np.float64, count=len(local))
        days = np.fromiter((t.weekday() for t in local), dtype=np.float64, count=len(local))
        return fast, hours, days
    derived = add_request_features(pd.DataFrame({"scheduled_departure": values}))
    utc = scheduled_departure_utc(pd.Series(values)).tolist()
    return (
        utc,
        derived["dep_hour"].to_numpy(dtype=np.float64),
        derived["day_of_week"].to_numpy(dtype=np.float64),
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
        when = cols.get("scheduled_departure") or cols.get(EVENT_TIMESTAMP)
        if when is None or any(v is None for v in when):
            return Rows(data, None)
        return Rows(data, departures(when)[0])
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
