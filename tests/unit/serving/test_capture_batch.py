"""The capture writer encodes all requests of a flush as one record batch: the rows that come
back are those the one-request encoder writes (per-request values on every row, a failed
prediction's null outputs, the departure times, missing inputs as nulls), and a request whose
parts disagree in length is dropped alone (counted ``encode``), the others of its flush kept."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from driftloop.data.capture import read_predictions
from driftloop.schema import CATEGORICAL_COLUMNS, MODEL_INPUT_COLUMNS
from driftloop.settings import Settings
from serving.capture import CaptureWriter, PredictionItem


def _item(request_id: str, n: int, **meta: Any) -> PredictionItem:
    rng = np.random.default_rng(n)
    inputs: dict[str, Any] = {c: rng.random(n) for c in MODEL_INPUT_COLUMNS}
    for col in CATEGORICAL_COLUMNS:
        inputs[col] = [f"{request_id}-{i}" if i % 2 else None for i in range(n)]
    inputs["temp"] = [None] * n  # a list with nulls, as a request sends it
    base = {
        "request_id": request_id,
        "ts": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        "routing_key": f"key-{request_id}",
        "variant": "champion",
        "served": True,
        "routed": n % 2 == 0,
        "model_name": "m",
        "model_version": "1",
        "latency_ms": 1.5,
        "model_ms": 0.25,
        "error": None,
        "decision_threshold": 0.4,
    }
    return ({**base, **meta}, n, rng.random(n), inputs, None)


def _rows(batches: list[pa.RecordBatch]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = pa.Table.from_batches(batches).to_pylist()
    return rows


def test_one_batch_per_flush_holds_the_rows_of_the_one_request_encoder(tmp_path: Path) -> None:
    writer = CaptureWriter(Settings(state_dir=tmp_path))
    departures = [datetime(2013, 1, 1, 10, tzinfo=UTC), datetime(2013, 1, 1, 11, tzinfo=UTC)]
    failed = _item("r2", 3, error="model failed", model_ms=None)
    items: list[PredictionItem] = [
        _item("r1", 1),
        (failed[0], failed[1], None, failed[3], None),  # a failed call: no probabilities
        (*_item("r3", 2)[:4], departures),
        _item("r4", 4, routing_key=None, decision_threshold=0.9),
    ]
    batches = writer._encode_all(list(items))
    assert len(batches) == 1
    one_by_one = [writer._encode(item) for item in items]
    assert all(b is not None for b in one_by_one)
    assert _rows(batches) == _rows([b for b in one_by_one if b is not None])
    rows = _rows(batches)
    assert [r["prediction_id"] for r in rows][:4] == ["r1:0", "r2:0", "r2:1", "r2:2"]
    assert all(r["late_probability"] is None and r["error"] == "model failed" for r in rows[1:4])
    assert rows[4]["event_timestamp"] == departures[0]
    assert all(r["routing_key"] is None for r in rows[6:])
    assert all(r["temp"] is None for r in rows)
    assert writer.dropped == 0


def test_a_request_of_inconsistent_lengths_is_dropped_alone(tmp_path: Path) -> None:
    settings = Settings(
        state_dir=tmp_path, serving={"capture_flush_s": 0.05, "capture_flush_rows": 100_000}
    )
    writer = CaptureWriter(settings)
    meta, n, probs, inputs, _ = _item("bad", 3)
    writer.put_predictions(meta, n, probs[:2], inputs, None)  # 2 probabilities for 3 rows
    for rid in ("ok1", "ok2"):
        item = _item(rid, 2)
        writer.put_predictions(*item)
    writer.start()
    assert writer.stop(10)
    df = read_predictions(settings, with_labels=False)
    assert sorted(df["request_id"].unique()) == ["ok1", "ok2"]
    assert writer.rows_dropped["encode"] == 3
    assert writer.rows_written == 4


def _single(request_id: str, **inputs: Any) -> PredictionItem:
    """A one-row request as the dataplane queues it: lists from the JSON body, numpy arrays
    for derived columns."""
    meta, _, _, _, _ = _item(request_id, 1)
    row: dict[str, Any] = {c: [1.0] for c in MODEL_INPUT_COLUMNS}
    row.update({c: ["UA"] for c in CATEGORICAL_COLUMNS})
    row["dep_hour"] = np.array([7.0])
    row.update(inputs)
    return (meta, 1, np.array([0.5]), row, [datetime(2013, 5, 1, 9, tzinfo=UTC)])


def test_a_flush_of_one_row_requests_is_the_one_request_encoder_s_rows(tmp_path: Path) -> None:
    """The usual flush at a fixed request rate (every request one row: per-request values need
    no per-row copy), with a failed call, an absent input column and a missing value."""
    writer = CaptureWriter(Settings(state_dir=tmp_path))
    absent = _single("s2")
    items: list[PredictionItem] = [
        _single("s1"),
        (absent[0], 1, absent[2], {k: v for k, v in absent[3].items() if k != "seats"}, None),
        (_single("s3")[0], 1, None, _single("s3")[3], _single("s3")[4]),  # failed: no output
        _single("s4", temp=[None], carrier=[None], distance=[float("nan")]),
    ]
    batches = writer._encode_all(list(items))
    assert len(batches) == 1
    one_by_one = [writer._encode(item) for item in items]
    assert _rows(batches) == _rows([b for b in one_by_one if b is not None])
    rows = _rows(batches)
    assert [r["prediction_id"] for r in rows] == ["s1:0", "s2:0", "s3:0", "s4:0"]
    assert (rows[1]["seats"], rows[1]["event_timestamp"]) == (None, None)
    assert (rows[2]["late_probability"], rows[2]["predicted_label"]) == (None, None)
    assert (rows[3]["temp"], rows[3]["carrier"], rows[3]["distance"]) == (None, None, None)
    assert [r["predicted_label"] for r in (rows[0], rows[1])] == [1, 1]  # 0.5 >= 0.4


def test_lengths_that_cancel_out_across_requests_are_still_refused(tmp_path: Path) -> None:
    """Two one-row requests, one with two values in a column and one with none: the column has
    the flush's two rows in all, but would shift a value onto the wrong request. Both are
    dropped (``encode``); the flush's other request is kept."""
    writer = CaptureWriter(Settings(state_dir=tmp_path))
    items: list[PredictionItem] = [
        _single("long", temp=[1.0, 2.0]),
        _single("short", temp=[]),
        _single("fine"),
    ]
    rows = _rows(writer._encode_all(items))
    assert [r["request_id"] for r in rows] == ["fine"]
    assert writer.rows_dropped["encode"] == 2


def test_a_request_of_no_rows_beside_one_of_two_keeps_every_row_on_its_request(
    tmp_path: Path,
) -> None:
    """Row counts [0, 2] sum to the number of requests: the flush must still take per-request
    values per row (a reviewer found ``a:0, b:0`` written instead of ``b:0, b:1``)."""
    writer = CaptureWriter(Settings(state_dir=tmp_path))
    empty = _item("a", 0)
    rows = _rows(writer._encode_all([empty, _item("b", 2)]))
    assert [r["prediction_id"] for r in rows] == ["b:0", "b:1"]
    assert [r["request_id"] for r in rows] == ["b", "b"]
