"""Example OIP v2 request bodies (docs, tests, benchmark): one flight of 2013-01-01, as request
fields (``flight_request``) or as a complete feature row (``features_request``), encoded by
:func:`serving.codec.request_body`."""

from __future__ import annotations

import functools
from typing import Any

import pandas as pd

from driftloop.schema import MODEL_INPUT_COLUMNS
from serving import codec

ROW: dict[str, Any] = {
    "carrier": "UA",
    "origin": "EWR",
    "dest": "IAH",
    "plane_type": "Fixed wing multi engine",
    "distance": 1400.0,
    "dep_hour": 5.0,
    "day_of_week": 1.0,
    "temp": 39.0,
    "dewp": 28.0,
    "humid": 64.0,
    "wind_speed": 12.7,
    "precip": 0.0,
    "visib": 10.0,
    "pressure": 1012.0,
    "plane_year": 1999.0,
    "seats": 149.0,
    "engines": 2.0,
    "late_rate_7d": 0.2,
    "mean_dep_delay_7d": 11.0,
    "flights_7d": 300.0,
}
FLIGHT: dict[str, Any] = {
    "carrier": "UA",
    "origin": "EWR",
    "dest": "IAH",
    "tailnum": "N14228",
    "scheduled_departure": "2013-01-01T05:15:00-05:00",
    "distance": 1400.0,
}


@functools.cache
def _inputs(kind: str, n: int) -> tuple[dict[str, Any], ...]:
    if kind == "features":
        rows = [{c: ROW[c] for c in MODEL_INPUT_COLUMNS} for _ in range(n)]
        for i, row in enumerate(rows):
            row["distance"] = 200.0 + 300.0 * (i % 10)
    else:
        rows = [dict(FLIGHT) for _ in range(n)]
    return tuple(codec.request_body(pd.DataFrame(rows))["inputs"])


def _body(kind: str, n: int, request_id: str | None, parameters: dict[str, Any]) -> dict[str, Any]:
    # fresh tensors per call (callers edit them); the encoding itself is cached per (kind, n)
    inputs = [{**t, "shape": list(t["shape"]), "data": list(t["data"])} for t in _inputs(kind, n)]
    body: dict[str, Any] = {"inputs": inputs}
    if request_id is not None:
        body["id"] = request_id
    if parameters:
        body["parameters"] = parameters
    return body


def features_request(
    n: int = 1, request_id: str | None = None, **parameters: Any
) -> dict[str, Any]:
    """``n`` complete feature rows (distance 200, 500, 800 ... so outputs differ by row)."""
    return _body("features", n, request_id, parameters)


def flight_request(n: int = 1, **parameters: Any) -> dict[str, Any]:
    """``n`` copies of :data:`FLIGHT` as request fields (features from the online store)."""
    return _body("flight", n, None, parameters)
