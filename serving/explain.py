"""Explanations on the request path (``parameters.explain=true``) and of a sample of traffic.

``parameters.explain`` (a JSON boolean; anything else is a 400) asks for per-feature
attributions of every row: integrated gradients of the served probability against the answering
version's baseline, computed by the model itself (``explain`` of serving's NumPy runtime,
:mod:`driftloop.inference.attributions`, or of a pyfunc saved before it, with Captum; a version
without it answers 501). The response gets one more output tensor::

    {"name": "attributions", "datatype": "FP64", "shape": [n, f], "data": [row-major n*f],
     "parameters": {"features": [...f input names...], "baseline_probability": 0.21,
                    "convergence_delta": [...n...], "method": "integrated_gradients",
                    "n_steps": 50, "baseline": "..."}}

The attributions of row i sum to ``late_probability[i] - baseline_probability`` up to
``convergence_delta[i]``. At most ``serving.explain_max_rows`` rows (413 above); the
explanation runs in its own worker thread, so the event loop keeps answering other requests.

Sampled capture: ``serving.explain_sample_rate`` of requests (default 1 %) are explained after
their answer is sent, off the request path like shadow scoring (a worker thread of their own,
the first :data:`SAMPLE_MAX_ROWS` rows of a request, at most :data:`MAX_PENDING` sampled
requests waiting: more are dropped and counted), and their attributions appended to
``{state}/capture/explanations/`` (layout and reader: :mod:`driftloop.monitoring.attribution`),
where the monitor computes attribution drift. Synthetic (load-test, probe) requests are not
sampled. A request that asked for ``explain`` and is sampled stores the attributions it has.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from driftloop.data.capture import partition_dir
from driftloop.errors import DriftloopError, InvalidInputError, PayloadTooLargeError
from driftloop.monitoring.attribution import EXPLANATIONS, explanation_table
from driftloop.settings import Settings

logger = logging.getLogger(__name__)

#: The request parameter that asks for attributions.
PARAMETER = "explain"
#: The name of the response's attributions tensor.
OUTPUT = "attributions"
#: Sampled requests waiting for their explanation; more are dropped (counted).
MAX_PENDING = 32
#: Rows of one sampled request that are explained (the first ones): a 10,000-row batch costs
#: the sample no more than a small request.
SAMPLE_MAX_ROWS = 100


class ExplainUnavailableError(DriftloopError):
    """The answering model version cannot explain its predictions."""

    status_code = 501


class Explained(Protocol):
    """What a model's ``explain`` returns (:class:`driftloop.training.explain.Attributions`)."""

    features: list[str]
    values: np.ndarray
    probability: np.ndarray
    baseline_probability: float
    delta: np.ndarray
    method: str
    n_steps: int
    baseline: str


def parse(value: Any) -> bool:
    """``parameters.explain`` of a request: absent or a JSON boolean (400 otherwise)."""
    if value is None or value is False:
        return False
    if value is True:
        return True
    raise InvalidInputError(
        f"parameters.explain must be true or false, got {str(value)[:40]!r} "
        f"({type(value).__name__})"
    )


def attribution_tensor(explained: Explained) -> dict[str, Any]:
    """The response tensor of ``explained`` (see the module)."""
    values = np.asarray(explained.values, dtype=np.float64)
    n, f = values.shape
    return {
        "name": OUTPUT,
        "shape": [n, f],
        "datatype": "FP64",
        "data": values.reshape(-1).tolist(),
        "parameters": {
            "features": list(explained.features),
            "baseline_probability": float(explained.baseline_probability),
            "convergence_delta": np.asarray(explained.delta, dtype=np.float64).tolist(),
            "method": explained.method,
            "n_steps": explained.n_steps,
            "baseline": explained.baseline,
        },
    }


def _head(columns: Any, k: int) -> Any:
    """The first ``k`` rows of a mapping column -> values, or of a DataFrame."""
    if isinstance(columns, dict):
        return {c: v[:k] for c, v in columns.items()}
    return columns.iloc[:k]


class ExplanationLog:
    """Buffered writer of explained rows: one parquet file per day and flush, when
    ``capture_flush_rows`` rows wait or ``capture_flush_s`` after the first waiting row (a
    timer thread); written under a temporary name and renamed, like the inference log."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.flush_rows = max(1, settings.serving.capture_flush_rows)
        self.flush_s = settings.serving.capture_flush_s
        self._lock = threading.Lock()
        self._tables: list[pa.Table] = []
        self._rows = 0
        self._timer: threading.Timer | None = None
        self._seq = 0
        self.rows_written = 0
        self.write_failures = 0

    def put(self, table: pa.Table) -> None:
        with self._lock:
            self._tables.append(table)
            self._rows += table.num_rows
            due = self._rows >= self.flush_rows
            if not due and self._timer is None:
                self._timer = threading.Timer(self.flush_s, self.flush)
                self._timer.daemon = True
                self._timer.start()
        if due:
            self.flush()

    def flush(self) -> None:
        """Write every waiting row now."""
        with self._lock:
            tables, self._tables, self._rows = self._tables, [], 0
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            by_schema: dict[tuple[str, ...], list[pa.Table]] = {}
            for t in tables:
                by_schema.setdefault(tuple(t.schema.names), []).append(t)
            for group in by_schema.values():
                self._write(pa.concat_tables(group))

    def _write(self, table: pa.Table) -> None:
        days = pc.strftime(table.column("ts"), format="%Y-%m-%d")
        for day in pc.unique(days).to_pylist():
            part = table.filter(pc.equal(days, day))
            folder = partition_dir(EXPLANATIONS, datetime.fromisoformat(day).date(), self.settings)
            stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
            self._seq += 1
            name = f"part-{stamp}-{id(self):x}-{self._seq:06d}.parquet"
            tmp = folder / f".{name}.tmp"
            try:
                folder.mkdir(parents=True, exist_ok=True)
                pq.write_table(part, tmp)
                tmp.replace(folder / name)
            except OSError as exc:
                tmp.unlink(missing_ok=True)
                self.write_failures += 1
                logger.error("explanations: %d rows not written (%s)", part.num_rows, exc)
                continue
            self.rows_written += part.num_rows


class Explainer:
    """Explanations of one serving process: on request (``explain``) and of a traffic sample
    (``sample``), in one worker thread."""

    def __init__(self, settings: Settings) -> None:
        serving = settings.serving
        self.sample_rate = serving.explain_sample_rate
        self.n_steps = serving.explain_steps
        self.max_rows = serving.explain_max_rows
        self.log = ExplanationLog(settings)
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="explain")
        # the sample has its own thread: a backlog of it never delays an explain request
        self._sample_pool = ThreadPoolExecutor(1, thread_name_prefix="explain-sample")
        self._pending = 0
        self._lock = threading.Lock()
        self.dropped = 0

    def check(self, n: int, handle: Any) -> None:
        """Refuse an ``explain`` request before it is scored: too many rows (413) or a version
        that cannot explain (501)."""
        if n > self.max_rows:
            raise PayloadTooLargeError(
                f"{n} rows exceed the limit of {self.max_rows} per request with "
                "parameters.explain (serving.explain_max_rows)"
            )
        if getattr(handle, "explain", None) is None:
            raise ExplainUnavailableError(
                f"model {handle.name} version {handle.version} cannot explain its predictions "
                "(not a driftloop pyfunc with explain)"
            )

    def _run(self, handle: Any, columns: Any) -> Explained:
        explained: Explained = handle.explain(columns, self.n_steps)
        return explained

    def submit(self, handle: Any, columns: Any) -> Future[Explained]:
        """Explain ``columns`` with ``handle`` in the worker thread."""
        return self._pool.submit(self._run, handle, columns)

    def sample(
        self,
        meta: dict[str, Any],
        handle: Any,
        columns: Any,
        n: int,
        explained: Explained | None,
    ) -> Future[None] | None:
        """Capture the explanation of a sampled request (``meta``: request_id, model_name,
        model_version, variant, routed): stored at once when ``explained``, else computed in
        the worker thread (its future; None when stored, dropped or not explainable)."""
        if explained is not None:
            self._store(meta, explained)
            return None
        if getattr(handle, "explain", None) is None:
            return None
        with self._lock:
            if self._pending >= MAX_PENDING:
                self.dropped += 1
                dropped = self.dropped
                if dropped & (dropped - 1) == 0:
                    logger.warning("explanation sample: %d requests dropped so far", dropped)
                return None
            self._pending += 1
        head = columns if n <= SAMPLE_MAX_ROWS else _head(columns, SAMPLE_MAX_ROWS)
        return self._sample_pool.submit(self._explain_and_store, meta, handle, head)

    def _explain_and_store(self, meta: dict[str, Any], handle: Any, columns: Any) -> None:
        try:
            self._store(meta, self._run(handle, columns))
        except Exception:
            logger.exception("explanation of sampled request %s failed", meta.get("request_id"))
        finally:
            with self._lock:
                self._pending -= 1

    def _store(self, meta: dict[str, Any], explained: Explained) -> None:
        values = np.asarray(explained.values, dtype=np.float64)
        table = explanation_table(
            {**meta, "ts": datetime.now(UTC)},
            list(explained.features),
            values,
            explained.probability,
            explained.baseline_probability,
            explained.delta,
        )
        self.log.put(table)

    def close(self) -> None:
        """Finish queued explanations, then write every waiting row."""
        self._pool.shutdown(wait=True, cancel_futures=False)
        self._sample_pool.shutdown(wait=True, cancel_futures=False)
        self.log.flush()
