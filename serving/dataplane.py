"""The transport-free inference core: decode -> features -> route -> predict -> capture -> encode.

Plain async Python; the routes of :mod:`serving.routes` only wire HTTP to it. The champion
predicts on the event loop (µs-scale models; a thread hop costs more than the model). The
challenger predicts in its own worker thread, so a slow challenger cannot stall the champion's
requests; if it raises, the champion answers instead and the challenger's error is captured
(callers never see it). In shadow mode the challenger scores a copy after the answer is
computed, off the request path.

Feedback (ground-truth labels) steers the loop, so it is checked: a label is accepted only for a
prediction that was served (:class:`serving.labels.ServedIndex`, then the capture files) and a
row below its request's row count; the whole call is refused otherwise (404 naming the first
unknown id, 400/413 for malformed or oversized calls) and nothing of it is stored. Every label
carries its labeler (the token's fingerprint); the first label of a prediction wins and a later
one is stored as a conflict (counted in the answer and in ``/metrics``). Request ids are chosen
by callers: labels for an id that more than one request used are refused (409, nothing stored),
since its prediction ids name rows of each of them (:data:`driftloop.data.capture.AMBIGUOUS`).

Every response and capture row carries the answering version's lineage id (computed when the
version is loaded). Requests marked synthetic (``parameters.synthetic`` or
:data:`SYNTHETIC_HEADER`: load tests, probes) are served as usual, counted with
``traffic="synthetic"`` and captured with their mark, which keeps them out of monitoring windows
and canary evidence; marking needs the admin scope when auth is on (:meth:`DataPlane.infer`).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson
from pydantic import ValidationError

from driftloop.data.capture import AMBIGUOUS, served_row_counts
from driftloop.errors import (
    ConflictError,
    DriftloopError,
    InvalidInputError,
    NotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
)
from driftloop.errors import ServiceUnavailableError as Unavailable
from driftloop.schema import MODEL_INPUT_COLUMNS, REQUEST_FIELDS
from driftloop.settings import Settings
from serving import codec, explain
from serving.capture import CaptureWriter
from serving.features import FeatureLookup
from serving.handles import ModelHandle, Reconciler
from serving.labels import LABEL_MEMORY_SIZE, SERVED_INDEX_SIZE, LabelMemory, ServedIndex
from serving.metrics import LIVE, SHADOW, SYNTHETIC, ServingMetrics
from serving.router import Route, Variant, route
from serving.rows import Rows, model_rows
from serving.schemas import FeedbackRequest

logger = logging.getLogger(__name__)

#: The request header that marks load-test / probe traffic (``X-Driftloop-Synthetic: load-test``).
SYNTHETIC_HEADER = "X-Driftloop-Synthetic"
#: JSON arrays and objects a feedback body may hold (it needs one object and two lists).
FEEDBACK_CONTAINERS = codec.Containers(arrays=16, objects=16)


class ModelFailedError(DriftloopError):
    """The model raised or returned something unusable (a server-side failure)."""

    status_code = 500


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one model call did for one request, as the inference log records it. ``served``:
    the caller got these probabilities (False for a shadow copy, or a challenger that failed and
    was replaced by the champion)."""

    handle: ModelHandle
    variant: Variant
    served: bool
    probs: np.ndarray | None = None
    model_ms: float | None = None
    failure: ModelFailedError | None = None

    @property
    def error(self) -> str | None:
        return None if self.failure is None else str(self.failure)


class DataPlane:
    #: checks the Authorization header of a request marked synthetic (raises 401/403); set by
    #: the app factory when auth is on (None: anyone may mark, as on the auth-off loopback)
    synthetic_guard: Callable[[str | None], object] | None = None

    def __init__(
        self,
        settings: Settings,
        reconciler: Reconciler,
        features: FeatureLookup,
        capture: CaptureWriter,
        feedback: CaptureWriter,
        metrics: ServingMetrics,
        *,
        served_index_size: int = SERVED_INDEX_SIZE,
        label_memory_size: int = LABEL_MEMORY_SIZE,
    ) -> None:
        self.settings = settings
        self.model_name = settings.mlflow.registered_model
        self.reconciler = reconciler
        self.features = features
        self.capture = capture
        self.feedback_writer = feedback
        self.metrics = metrics
        self.limits = codec.Limits.of(settings.serving)
        self._challenger_pool = ThreadPoolExecutor(2, thread_name_prefix="challenger")
        self._background: set[asyncio.Future[Any]] = set()
        self._shadow_pending = 0  # copies submitted to the pool and not yet done (loop only)
        self._shadow_max = settings.serving.shadow_max_pending
        self.served = ServedIndex(served_index_size)
        self.labels = LabelMemory(label_memory_size)
        # look-ups of labelled predictions in the capture files: one at a time, off the loop
        self._lookup_pool = ThreadPoolExecutor(1, thread_name_prefix="feedback-lookup")
        # attributions on request (parameters.explain) and of a traffic sample, own thread
        self.explainer = explain.Explainer(settings)
        self._explain_rate = settings.serving.explain_sample_rate

    def close(self) -> None:
        self._challenger_pool.shutdown(wait=True, cancel_futures=False)
        self._lookup_pool.shutdown(wait=True, cancel_futures=True)
        self.explainer.close()

    # -- metadata / health -------------------------------------------------------------------
    def check_model(self, name: str, version: str | None = None) -> ModelHandle | None:
        if name != self.model_name:
            raise NotFoundError(f"unknown model {name!r}: this server serves {self.model_name!r}")
        if version is None:
            return None
        handle = self.reconciler.state.versions().get(str(version))
        if handle is None:
            loaded = sorted(self.reconciler.state.versions())
            raise NotFoundError(f"model {name} version {version} is not loaded (loaded: {loaded})")
        return handle

    def health(self) -> dict[str, Any]:
        """Reconciler state plus whether the online store is open (flight-mode requests)."""
        return {**self.reconciler.health(), "online_features": self.features.ready}

    def model_ready(self, name: str, version: str | None = None) -> bool:
        if name != self.model_name:
            raise NotFoundError(f"unknown model {name!r}: this server serves {self.model_name!r}")
        state = self.reconciler.state
        if version is None:
            return state.champion is not None
        return str(version) in state.versions()

    def metadata(self, name: str, version: str | None = None) -> dict[str, Any]:
        self.check_model(name, version)
        state = self.reconciler.state
        inputs = [
            {
                "name": c,
                "datatype": "BYTES" if c in codec.TEXT_COLUMNS else "FP64",
                "shape": [-1],
            }
            for c in dict.fromkeys([*REQUEST_FIELDS, *MODEL_INPUT_COLUMNS])
        ]
        thresholds = {
            v: {"threshold": h.threshold, "source": h.threshold_source}
            for v, h in state.versions().items()
            if version is None or v == str(version)
        }
        runtimes = {v: h.runtime for v, h in state.versions().items() if v in thresholds}
        return {
            "name": name,
            "versions": [version] if version else sorted(state.versions(), key=int),
            "platform": "mlflow_pyfunc",
            "inputs": inputs,
            "outputs": [
                {"name": "late_probability", "datatype": "FP64", "shape": [-1]},
                {"name": "is_late", "datatype": "INT64", "shape": [-1]},
            ],
            "parameters": {
                "champion": state.champion.version if state.champion else None,
                "challenger": state.challenger.version if state.challenger else None,
                "canary_weight": state.weight if state.challenger else 0,
                "mode": state.mode,
                "thresholds": thresholds,
                "runtimes": runtimes,
                "content_types": {
                    codec.FLIGHT: list(REQUEST_FIELDS),
                    codec.FEATURES: list(MODEL_INPUT_COLUMNS),
                },
            },
        }

    # -- inference -----------------------------------------------------------------------------
    @staticmethod
    def _predict(handle: ModelHandle, rows: Rows) -> tuple[np.ndarray, float]:
        """``(probabilities, model milliseconds)``: the time of the model call alone is what a
        canary compares (the challenger's thread hop is the server's, not the model's)."""
        n = len(rows)
        t0 = time.perf_counter()
        try:
            # driftloop's models take the columns as they are; other pyfuncs get a DataFrame
            probs = handle.predict(rows.columns if handle.takes_columns else rows.frame)
        except Exception as exc:
            raise ModelFailedError(
                f"model {handle.name} version {handle.version} failed: "
                f"{type(exc).__name__}: {str(exc)[:200]}"
            ) from exc
        if probs.shape != (n,) or not np.isfinite(probs).all():
            raise ModelFailedError(
                f"model {handle.name} version {handle.version} returned {probs.shape} "
                f"values (expected {n} finite probabilities)"
            )
        return probs, (time.perf_counter() - t0) * 1e3

    def _score(self, handle: ModelHandle, variant: Variant, served: bool, rows: Rows) -> Outcome:
        """One model call as an :class:`Outcome` (a failure is recorded, not raised)."""
        try:
            probs, ms = self._predict(handle, rows)
        except ModelFailedError as err:
            return Outcome(handle, variant, served, failure=err)
        return Outcome(handle, variant, served, probs=probs, model_ms=ms)

    def _record(
        self,
        decoded: codec.Decoded,
        key: str,
        rows: Rows,
        started: float,
        outcome: Outcome,
        routed: bool,
        shadow: bool = False,
    ) -> None:
        seconds = time.perf_counter() - started
        error = outcome.error
        handle = outcome.handle
        self.metrics.observe(
            handle.version,
            # a shadow copy is no request a caller made: counted apart from the challenger's
            # answers (the capture keeps variant "challenger" with served False: the canary
            # evidence reads it so)
            SHADOW if shadow else outcome.variant.value,
            decoded.n,
            seconds,
            error is not None,
            LIVE if decoded.synthetic is None else SYNTHETIC,
        )
        meta = {
            "request_id": decoded.request_id,
            "ts": datetime.now(UTC),
            "routing_key": key,
            "variant": outcome.variant.value,
            "served": outcome.served,
            "routed": routed,
            "model_name": handle.name,
            "model_version": handle.version,
            "latency_ms": seconds * 1e3,
            "model_ms": outcome.model_ms,
            "error": error,
            # the version's decision threshold: the capture's predicted_label (and its column
            # decision_threshold once driftloop.data.capture's schema has one)
            "decision_threshold": handle.threshold,
            "lineage_id": handle.lineage_id,
            "synthetic": decoded.synthetic,
        }
        self.capture.put_predictions(meta, decoded.n, outcome.probs, rows.columns, rows.event_ts)
        if outcome.served:  # once per request (not its shadow copy or failed challenger call)
            self.served.add(decoded.request_id, decoded.n)

    async def infer(
        self,
        name: str,
        body: bytes,
        version: str | None = None,
        *,
        synthetic: str | None = None,
        authorization: str | None = None,
    ) -> bytes:
        """Answer one OIP v2 inference request body with a response body. ``synthetic``: the
        caller's :data:`SYNTHETIC_HEADER` (load-test / probe traffic, like
        ``parameters.synthetic``); ``authorization``: its Authorization header, checked only
        when the request is marked (see :meth:`_mark_synthetic`)."""
        started = time.perf_counter()
        pinned = self.check_model(name, version)
        decoded = codec.decode(body, self.settings.serving.max_rows_per_request, self.limits)
        if synthetic is not None or decoded.synthetic is not None:
            self._mark_synthetic(decoded, synthetic, authorization)
        rows = model_rows(decoded, self.features)
        state = self.reconciler.state
        key = decoded.routing_key
        # canary evidence only where the weight split chose: not pinned, no caller-chosen key
        routed = pinned is None and key is None
        if key is None:
            tail = decoded.columns.get("tailnum") if decoded.mode == codec.FLIGHT else None
            key = tail[0] if tail and tail[0] else decoded.request_id
        if pinned is not None:
            variant = (
                Variant.CHAMPION
                if state.champion is not None and pinned.version == state.champion.version
                else Variant.CHALLENGER
            )
            chosen: Route | None = Route(pinned, variant)
        else:
            chosen = route(state, key)
        if chosen is None:
            raise Unavailable(f"no champion of model {name} is loaded yet")
        handle, variant = chosen.primary, chosen.variant
        if decoded.explain:  # 413/501 before anything is scored
            self.explainer.check(decoded.n, handle)
        if variant is Variant.CHALLENGER and pinned is None and state.champion is not None:
            loop = asyncio.get_running_loop()
            outcome = await loop.run_in_executor(
                self._challenger_pool, self._score, handle, variant, True, rows
            )
            if outcome.probs is not None:
                self._record(decoded, key, rows, started, outcome, routed)
                probs = outcome.probs
            else:
                logger.warning("%s: answered by the champion instead", outcome.failure)
                handle, variant = state.champion, Variant.CHAMPION
                fallback = self._score(handle, variant, True, rows)
                # Rows that fail both models are the input's fault, not the challenger's: they
                # are captured but are no canary evidence for either arm (a caller could
                # otherwise roll any challenger back with rows no model can score).
                evidence = routed and fallback.probs is not None
                failed = replace(outcome, served=False)
                self._record(decoded, key, rows, started, failed, evidence)
                self._record(decoded, key, rows, started, fallback, evidence)
                if fallback.probs is None:
                    raise fallback.failure or ModelFailedError(f"model {handle.name} failed")
                probs = fallback.probs
        else:
            probs = self._serve_inline(decoded, key, handle, variant, started, rows, routed)
        if chosen.shadow is not None:
            self._spawn_shadow(decoded, key, chosen.shadow, rows, routed)
        explained = await self._explain(handle, rows) if decoded.explain else None
        if (
            self._explain_rate
            and decoded.synthetic is None
            and random.random() < self._explain_rate
        ):
            self._sample_explanation(decoded, handle, variant, rows, routed, explained)
        parameters = {
            "variant": variant.value,
            "threshold": handle.threshold,
            "threshold_source": handle.threshold_source,
            "lineage_id": handle.lineage_id,
        }
        if decoded.synthetic is not None:
            parameters["synthetic"] = decoded.synthetic
        return codec.encode(
            self.model_name,
            handle.version,
            decoded.request_id,
            probs,
            decoded.outputs,
            parameters,
            handle.threshold,
            () if explained is None else (explain.attribution_tensor(explained),),
        )

    async def _explain(self, handle: ModelHandle, rows: Rows) -> explain.Explained:
        """Attributions of the answering version for ``rows``, in the explain thread."""
        self.explainer.check(len(rows), handle)  # the champion may have answered instead
        columns = rows.columns if handle.takes_columns else rows.frame
        try:
            return await asyncio.wrap_future(self.explainer.submit(handle, columns))
        except Exception as exc:
            raise ModelFailedError(
                f"model {handle.name} version {handle.version} could not explain: "
                f"{type(exc).__name__}: {str(exc)[:200]}"
            ) from exc

    def _sample_explanation(
        self,
        decoded: codec.Decoded,
        handle: ModelHandle,
        variant: Variant,
        rows: Rows,
        routed: bool,
        explained: explain.Explained | None,
    ) -> None:
        """Capture the explanation of a sampled request, off the request path."""
        meta = {
            "request_id": decoded.request_id,
            "model_name": handle.name,
            "model_version": handle.version,
            "variant": variant.value,
            "routed": routed,
        }
        columns = rows.columns if handle.takes_columns else rows.frame
        future = self.explainer.sample(meta, handle, columns, len(rows), explained)
        if future is not None:
            wrapped = asyncio.wrap_future(future)
            self._background.add(wrapped)
            wrapped.add_done_callback(self._background.discard)

    def _mark_synthetic(
        self, decoded: codec.Decoded, header: str | None, authorization: str | None
    ) -> None:
        """Mark the request synthetic (served, counted with ``traffic="synthetic"``, captured
        with its mark, left out of monitoring and canary evidence). Hiding traffic from the loop
        is not a predict client's call: with auth on the caller needs the admin scope (403
        otherwise, nothing served); with auth off (loopback development) anyone may."""
        mark = decoded.synthetic or codec.synthetic_mark(header, f"header {SYNTHETIC_HEADER}")
        if mark is None:
            return
        if self.synthetic_guard is not None:
            try:
                self.synthetic_guard(authorization)
            except PermissionDeniedError:
                raise PermissionDeniedError(
                    "marking traffic synthetic (parameters.synthetic or "
                    f"{SYNTHETIC_HEADER}) needs the admin scope: synthetic rows are left out "
                    "of monitoring and canary evidence"
                ) from None
        decoded.synthetic = mark

    def _serve_inline(
        self,
        decoded: codec.Decoded,
        key: str,
        handle: ModelHandle,
        variant: Variant,
        started: float,
        rows: Rows,
        routed: bool,
    ) -> np.ndarray:
        outcome = self._score(handle, variant, True, rows)
        self._record(decoded, key, rows, started, outcome, routed)
        if outcome.probs is None:
            raise outcome.failure or ModelFailedError(f"model {handle.name} returned nothing")
        return outcome.probs

    def _spawn_shadow(
        self,
        decoded: codec.Decoded,
        key: str,
        handle: ModelHandle,
        rows: Rows,
        routed: bool,
    ) -> None:
        def score() -> None:
            started = time.perf_counter()
            outcome = self._score(handle, Variant.CHALLENGER, False, rows)
            self._record(decoded, key, rows, started, outcome, routed, shadow=True)

        if self._shadow_pending >= self._shadow_max:
            # the challenger falls behind the traffic: skip this copy rather than queue it
            # (a queue of copies takes the CPU the champion's answers need; benchmarks/serving.py
            # measured the shadow p99 at ~400 ms on 2 cores before this bound)
            self.metrics.shadow_dropped.inc()
            return
        self._shadow_pending += 1
        future = asyncio.get_running_loop().run_in_executor(self._challenger_pool, score)
        self._background.add(future)
        future.add_done_callback(self._shadow_done)

    def _shadow_done(self, future: asyncio.Future[Any]) -> None:
        self._shadow_pending -= 1
        self._background.discard(future)

    async def drain(self) -> None:
        """Wait for shadow scoring still in flight (shutdown and tests)."""
        if self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    # -- feedback ------------------------------------------------------------------------------
    async def feedback(self, name: str, body: bytes, labeler: str = "anonymous") -> dict[str, int]:
        """Store ground-truth labels for served predictions (by request id or prediction ids),
        each with ``labeler`` (the caller's token fingerprint). Returns ``{"accepted": n,
        "conflicts": k}``: k of the n labels are for predictions this replica had seen
        labelled differently (stored, but the first label wins)."""
        self.check_model(name)
        try:
            request_ids, rows, labels, by_request = self._parse_feedback(body)
        except InvalidInputError as err:
            too_large = isinstance(err, PayloadTooLargeError)
            self.metrics.reject_feedback("too_large" if too_large else "invalid")
            raise
        counts = await self._served_rows(request_ids)
        try:
            self._check_served(request_ids, rows, counts, by_request)
        except NotFoundError:
            self.metrics.reject_feedback("unknown_prediction")
            raise
        except ConflictError:
            self.metrics.reject_feedback("ambiguous_request_id")
            raise
        except InvalidInputError:
            self.metrics.reject_feedback("invalid")
            raise
        prediction_ids = [f"{r}:{i}" for r, i in zip(request_ids, rows, strict=True)]
        conflicts = self.labels.record(zip(prediction_ids, labels, strict=True))
        now = datetime.now(UTC)
        self.feedback_writer.put_feedback(
            {
                "prediction_id": prediction_ids,
                "request_id": request_ids,
                "row": rows,
                "is_late": labels,
                "ts": [now] * len(rows),
                "labeler": [labeler] * len(rows),
            }
        )
        self.metrics.count_feedback_conflicts(conflicts)
        return {"accepted": len(rows), "conflicts": conflicts}

    def _parse_feedback(self, body: bytes) -> tuple[list[str], list[int], list[int], bool]:
        """(request ids, rows, labels, whether by request id) of a feedback body; 400/413
        naming the problem. The lists are counted before pydantic validates their items: a
        long list of wrong types would cost one error object per item (seconds)."""
        codec.check_containers(body, FEEDBACK_CONTAINERS)
        try:
            raw = orjson.loads(body)
        except orjson.JSONDecodeError as err:
            raise InvalidInputError(f"malformed JSON: {str(err)[:200]}") from None
        limit = self.settings.serving.max_rows_per_request
        if isinstance(raw, dict):
            for key in ("labels", "prediction_ids"):
                items = raw.get(key)
                if isinstance(items, list) and len(items) > limit:
                    raise PayloadTooLargeError(
                        f"{len(items)} {key} exceed the limit of {limit} per call"
                    )
        try:
            req = FeedbackRequest.model_validate(raw)
        except ValidationError as err:
            raise InvalidInputError(codec.describe_validation_error(err)) from None
        if (req.request_id is None) == (req.prediction_ids is None):
            raise InvalidInputError("send exactly one of request_id or prediction_ids")
        if any(label not in (0, 1) for label in req.labels):
            raise InvalidInputError("labels must be 0 (on time) or 1 (late, > 15 min)")
        max_id = self.settings.serving.max_id_length
        if req.request_id is not None:
            if len(req.request_id) > max_id:
                raise InvalidInputError(
                    f"request_id of {len(req.request_id)} characters exceeds {max_id}"
                )
            n = len(req.labels)
            return [req.request_id] * n, list(range(n)), req.labels, True
        ids = req.prediction_ids or []
        if len(ids) != len(req.labels):
            raise InvalidInputError(f"{len(ids)} prediction_ids but {len(req.labels)} labels")
        request_ids, rows = [], []
        row_digits = len(str(limit))
        for pid in ids:
            rid, sep, row = pid.rpartition(":")
            if len(rid) > max_id or len(row) > row_digits:
                raise InvalidInputError(
                    f"prediction id {pid[:40]!r}... of {len(pid)} characters is too long "
                    f"(request ids hold at most {max_id})"
                )
            if not sep or not rid or not row.isdigit():
                raise InvalidInputError(
                    f"prediction id {pid!r} is not of the form '<request_id>:<row>'"
                )
            request_ids.append(rid)
            rows.append(int(row))
        return request_ids, rows, req.labels, False

    async def _served_rows(self, request_ids: list[str]) -> dict[str, int]:
        """Rows served per request id, from the index, else from the capture files."""
        counts: dict[str, int] = {}
        missing: set[str] = set()
        for rid in dict.fromkeys(request_ids):
            n = self.served.rows(rid)
            if n is None:
                missing.add(rid)
            else:
                counts[rid] = n
        if missing:
            loop = asyncio.get_running_loop()
            found = await loop.run_in_executor(
                self._lookup_pool, served_row_counts, missing, self.settings
            )
            self.served.update(found)
            counts.update(found)
        return counts

    @staticmethod
    def _check_served(
        request_ids: list[str], rows: list[int], counts: dict[str, int], by_request: bool
    ) -> None:
        """404 naming the first label without a served prediction; 409 for a request id that
        more than one request used; 400 for a request id call with more labels than the request
        had rows."""
        for rid in dict.fromkeys(request_ids):
            if counts.get(rid) == AMBIGUOUS:
                raise ConflictError(
                    f"request id {rid!r} was used by more than one request: its predictions "
                    "cannot be told apart, so no label is accepted for it (send a unique id "
                    "per request)"
                )
        if by_request:
            rid = request_ids[0]
            if rid not in counts:
                raise NotFoundError(
                    f"unknown request_id {rid!r}: no served prediction has it "
                    "(labels are accepted only for served predictions)"
                )
            if len(rows) > counts[rid]:
                raise InvalidInputError(
                    f"{len(rows)} labels but request {rid!r} has {counts[rid]} rows"
                )
            return
        for rid, row in zip(request_ids, rows, strict=True):
            n = counts.get(rid)
            if n is None or row >= n:
                why = f"request {rid!r} has {n} rows" if n is not None else "it was never served"
                raise NotFoundError(
                    f"unknown prediction id '{rid}:{row}': {why} "
                    "(labels are accepted only for served predictions)"
                )
