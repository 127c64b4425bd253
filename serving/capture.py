"""Batched writer of the inference log (layout, schema and reader in
:mod:`driftloop.data.capture`).

Requests only put a small tuple on a queue (no I/O, no pandas work); a background thread turns
items into columns and writes one parquet file per day and flush, when ``capture_flush_rows``
rows are waiting or ``capture_flush_s`` has passed. Files are written under a temporary name and
renamed. A full queue (writer far behind) drops items with a warning instead of slowing requests.
"""

from __future__ import annotations

import itertools
import logging
import os
import queue
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from driftloop.data.capture import (
    FEEDBACK,
    FEEDBACK_COLUMNS,
    FEEDBACK_SCHEMA,
    PREDICTION_META_COLUMNS,
    PREDICTION_SCHEMA,
    PREDICTIONS,
    partition_dir,
)
from driftloop.schema import EVENT_TIMESTAMP, MODEL_INPUT_COLUMNS
from driftloop.settings import Settings

logger = logging.getLogger(__name__)

MAX_QUEUE = 200_000
#: A queued request's predictions: (meta, n, probabilities, inputs, event timestamps).
PredictionItem = tuple[dict[str, Any], int, np.ndarray | None, Mapping[str, Any], list[Any] | None]
#: Queued feedback rows as columns.
FeedbackItem = dict[str, list[Any]]
#: Prediction columns that every row of a request copies from its ``meta``; the others are
#: per row (id, row number, outputs, departure time, inputs).
PER_ROW = {"prediction_id", "row", "late_probability", "predicted_label", EVENT_TIMESTAMP}
META_FROM_REQUEST = [c for c in PREDICTION_META_COLUMNS if c not in PER_ROW]


class CaptureWriter:
    """Background writer of one kind of capture file (``predictions`` or ``feedback``)."""

    def __init__(self, settings: Settings, kind: str = PREDICTIONS) -> None:
        if kind not in (PREDICTIONS, FEEDBACK):
            raise ValueError(f"unknown capture kind {kind!r}")
        self.settings = settings
        self.kind = kind
        self.schema = PREDICTION_SCHEMA if kind == PREDICTIONS else FEEDBACK_SCHEMA
        self.flush_rows = max(1, settings.serving.capture_flush_rows)
        self.flush_s = settings.serving.capture_flush_s
        self._queue: queue.Queue[PredictionItem | FeedbackItem | None] = queue.Queue(MAX_QUEUE)
        self._thread: threading.Thread | None = None
        self._seq = itertools.count()
        self._tag = f"{socket.gethostname()}-{os.getpid()}"
        self.rows_written = 0
        self.files_written = 0
        self.dropped = 0
        self._idle = threading.Event()
        self._idle.set()

    # -- request side -----------------------------------------------------------------------
    def put_predictions(
        self,
        meta: dict[str, Any],
        n: int,
        probabilities: np.ndarray | None,
        inputs: Mapping[str, Any],
        event_timestamps: list[Any] | None,
    ) -> None:
        """Queue ``n`` prediction rows sharing ``meta`` (request_id, ts, routing_key, variant,
        served, model_name, model_version, latency_ms, model_ms, error); ``inputs`` maps model input
        columns to lists or numpy arrays of length ``n`` (NaN/None = missing)."""
        self._put((meta, n, probabilities, inputs, event_timestamps))

    def put_feedback(self, rows: dict[str, list[Any]]) -> None:
        """Queue feedback rows given as columns (prediction_id, request_id, row, is_late, ts)."""
        self._put(rows)

    def _put(self, item: PredictionItem | FeedbackItem) -> None:
        try:
            self._queue.put_nowait(item)
            self._idle.clear()
        except queue.Full:
            self.dropped += 1
            if self.dropped % 1000 == 1:
                logger.warning("capture queue full: %d items dropped so far", self.dropped)

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name=f"capture-{self.kind}", daemon=True
            )
            self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Flush everything queued and end the thread."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout)
            self._thread = None

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until everything queued so far is on disk (for tests and shutdown)."""
        return self._idle.wait(timeout)

    # -- writer thread --------------------------------------------------------------------
    def _run(self) -> None:
        columns: dict[str, list[Any]] = defaultdict(list)
        rows = 0
        first_at = 0.0
        stopping = False
        while not stopping:
            timeout = None if rows == 0 else max(0.0, first_at + self.flush_s - time.monotonic())
            try:
                item = self._queue.get(timeout=timeout)
            except queue.Empty:
                item = None
            else:
                stopping = item is None
            if item is not None:
                if rows == 0:
                    first_at = time.monotonic()
                try:
                    rows += self._expand(item, columns)
                except Exception:
                    logger.exception("capture item could not be encoded: dropped")
            due = rows >= self.flush_rows or (rows and time.monotonic() - first_at >= self.flush_s)
            if rows and (due or stopping):
                self._write(columns)
                columns, rows = defaultdict(list), 0
            if rows == 0 and self._queue.empty():
                self._idle.set()
        self._idle.set()

    def _expand(self, item: PredictionItem | FeedbackItem, columns: dict[str, list[Any]]) -> int:
        if isinstance(item, dict):  # feedback
            n = len(item["prediction_id"])
            for col in FEEDBACK_COLUMNS:
                columns[col].extend(item[col])
            return n
        meta, n, probs, inputs, event_ts = item
        request_id = meta["request_id"]
        columns["prediction_id"].extend(f"{request_id}:{i}" for i in range(n))
        columns["row"].extend(range(n))
        for key in META_FROM_REQUEST:
            columns[key].extend([meta.get(key)] * n)
        if probs is None:
            columns["late_probability"].extend([None] * n)
            columns["predicted_label"].extend([None] * n)
        else:
            columns["late_probability"].extend(probs.tolist())
            columns["predicted_label"].extend((probs >= 0.5).astype(np.int8).tolist())
        columns[EVENT_TIMESTAMP].extend(event_ts if event_ts is not None else [None] * n)
        for col in MODEL_INPUT_COLUMNS:
            values = inputs.get(col)
            if values is None:
                columns[col].extend([None] * n)
            elif isinstance(values, np.ndarray):
                columns[col].extend(values.tolist())
            else:
                columns[col].extend(values)
        return n

    def _write(self, columns: dict[str, list[Any]]) -> None:
        try:
            table = pa.table(
                [
                    pa.array(columns.get(f.name, []), type=f.type, from_pandas=True)
                    for f in self.schema
                ],
                schema=self.schema,
            )
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError):
            n = max((len(v) for v in columns.values()), default=0)
            logger.exception("capture batch of %d rows could not be encoded: dropped", n)
            return
        days = pc.strftime(table.column("ts"), format="%Y-%m-%d")
        for day in pc.unique(days).to_pylist():
            part = table.filter(pc.equal(days, day)) if day is not None else table
            folder = partition_dir(self.kind, datetime.fromisoformat(day).date(), self.settings)
            folder.mkdir(parents=True, exist_ok=True)
            stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
            name = f"part-{stamp}-{self._tag}-{next(self._seq):06d}.parquet"
            tmp = folder / f".{name}.tmp"
            try:
                pq.write_table(part, tmp)
                os.replace(tmp, folder / name)
            except OSError:
                logger.exception("could not write capture file %s", folder / name)
                continue
            self.rows_written += part.num_rows
            self.files_written += 1
