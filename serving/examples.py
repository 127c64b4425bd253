"""Example OIP v2 request bodies (docs, tests, benchmark): one flight of 2013-01-01, as request
fields (``flight_request``) or as a complete feature row (``features_request``)."""

from __future__ import annotations

from typing import Any

from driftloop.schema import CATEGORICAL_COLUMNS, MODEL_INPUT_COLUMNS

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


def tensors(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for name in rows[0]:
        text = name in CATEGORICAL_COLUMNS or name in ("tailnum", "scheduled_departure")
        out.append(
            {
                "name": name,
                "shape": [len(rows)],
                "datatype": "BYTES" if text else "FP64",
                "data": [r[name] for r in rows],
            }
        )
    return out


def features_request(
    n: int = 1, request_id: str | None = None, **parameters: Any
) -> dict[str, Any]:
    rows = [{c: ROW[c] for c in MODEL_INPUT_COLUMNS} for _ in range(n)]
    for i, row in enumerate(rows):
        row["distance"] = 200.0 + 300.0 * (i % 10)
    body: dict[str, Any] = {"inputs": tensors(rows)}
    if request_id is not None:
        body["id"] = request_id
    if parameters:
        body["parameters"] = parameters
    return body


def flight_request(n: int = 1, **parameters: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"inputs": tensors([dict(FLIGHT) for _ in range(n)])}
    if parameters:
        body["parameters"] = parameters
    return body
