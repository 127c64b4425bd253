"""The FastAPI app: thin routes over :class:`serving.dataplane.DataPlane`.

``create_app(settings)`` builds everything (tests build their own apps). Endpoints:

* OIP v2: ``GET /v2``, ``GET /v2/health/live``, ``GET /v2/health/ready`` (200 ``ready``; 200
  ``degraded`` when models serve but the registry is unreachable; 503 ``not_ready`` without a
  champion), ``GET /v2/models/{name}[/versions/{v}]``, ``.../ready``, ``POST .../infer``.
* ``POST /v2/models/{name}/feedback``: ground-truth labels by request id.
* ``GET /metrics``: Prometheus.
* admin (admin scope): ``GET /admin/state``, ``GET /admin/audit``, ``POST /admin/weight``,
  ``POST /admin/promote``, ``POST /admin/rollback``.

Every error is ``{"error": "..."}``: a :class:`DriftloopError` with its status, an unknown route
404, anything unexpected a logged 500.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ValidationError
from pydantic.json_schema import models_json_schema
from starlette.exceptions import HTTPException as StarletteHTTPException

from driftloop.data.capture import FEEDBACK, PREDICTIONS
from driftloop.errors import DriftloopError, InvalidInputError, PayloadTooLargeError
from driftloop.settings import Settings
from serving.auth import ADMIN, PREDICT, Authenticator
from serving.capture import CaptureWriter
from serving.dataplane import DataPlane
from serving.features import FeatureLookup, FeatureSource
from serving.handles import Loader, Reconciler, freeze_heap, load_handle
from serving.metrics import CONTENT_TYPE_LATEST, ServingMetrics
from serving.schemas import (
    ActionRequest,
    ErrorResponse,
    FeedbackRequest,
    FeedbackResponse,
    Health,
    InferenceRequest,
    InferenceResponse,
    ModelMetadata,
    ServerMetadata,
    WeightRequest,
)

logger = logging.getLogger(__name__)

JSON = "application/json"
ERRORS: dict[int | str, dict[str, Any]] = {
    s: {"model": ErrorResponse} for s in (400, 401, 403, 404, 409, 413, 503)
}
_BODY_SCHEMAS: dict[str, type[BaseModel]] = {
    "InferenceRequest": InferenceRequest,
    "FeedbackRequest": FeedbackRequest,
}


def _body(name: str) -> dict[str, Any]:
    ref = {"$ref": f"#/components/schemas/{name}"}
    return {"requestBody": {"required": True, "content": {JSON: {"schema": ref}}}}


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def create_app(
    settings: Settings,
    *,
    loader: Loader = load_handle,
    feature_source: FeatureSource | None = None,
) -> FastAPI:
    """Build the inference app. ``loader``/``feature_source`` replace the MLflow model loader and
    the online store (defaults: the real ones)."""
    metrics = ServingMetrics()
    reconciler = Reconciler(settings, loader)
    features = FeatureLookup(settings, feature_source)
    capture = CaptureWriter(settings, PREDICTIONS)
    feedback = CaptureWriter(settings, FEEDBACK)
    plane = DataPlane(settings, reconciler, features, capture, feedback, metrics)
    auth = Authenticator(settings)
    max_body = settings.serving.max_body_bytes
    name_ = settings.mlflow.registered_model

    async def keep_features_warm() -> None:
        while not features.ready:
            await asyncio.to_thread(features.warm)
            if not features.ready:
                await asyncio.sleep(max(settings.serving.reconcile_interval_s, 5.0))
        await asyncio.to_thread(freeze_heap)  # the feature snapshot is long-lived too

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        capture.start()
        feedback.start()
        await reconciler.reconcile_now()  # first models before the first request
        reconciler.start()
        warm = asyncio.get_running_loop().create_task(keep_features_warm())
        logger.info("serving %s: %s", name_, reconciler.health())
        try:
            yield
        finally:
            warm.cancel()
            await reconciler.stop()
            await plane.drain()
            plane.close()
            capture.stop()
            feedback.stop()

    app = FastAPI(
        title="driftloop inference",
        version="0.1.0",
        description=(__doc__ or "").split("\n\n")[0],
        lifespan=lifespan,
    )
    app.state.plane = plane
    app.state.reconciler = reconciler
    app.state.capture = capture
    app.state.feedback = feedback
    app.state.metrics = metrics

    # -- errors ----------------------------------------------------------------------------
    @app.exception_handler(DriftloopError)
    async def _driftloop_error(request: Request, exc: DriftloopError) -> JSONResponse:
        if exc.status_code >= 500:
            logger.error("%s %s: %s", request.method, request.url.path, exc)
        else:
            metrics.rejected.labels(str(exc.status_code)).inc()
        return _error(exc.status_code, str(exc))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        loc = ".".join(str(p) for p in first.get("loc", ()))
        metrics.rejected.labels("400").inc()
        return _error(400, f"invalid request at {loc}: {first.get('msg', 'invalid')}")

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unexpected error on %s %s", request.method, request.url.path)
        return _error(500, f"internal server error ({type(exc).__name__})")

    async def read_body(request: Request) -> bytes:
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > max_body:
            raise PayloadTooLargeError(f"body of {length} bytes exceeds {max_body} bytes")
        body = await request.body()
        if len(body) > max_body:
            raise PayloadTooLargeError(f"body of {len(body)} bytes exceeds {max_body} bytes")
        return body

    def parse(model: type[Any], body: bytes) -> Any:
        try:
            return model.model_validate_json(body or b"{}")
        except ValidationError as err:
            first = err.errors(include_url=False)[0]
            loc = ".".join(str(p) for p in first.get("loc", ()))
            raise InvalidInputError(f"invalid request at {loc or 'body'}: {first['msg']}") from None

    # -- OIP v2 ----------------------------------------------------------------------------
    @app.get("/v2", response_model=ServerMetadata, tags=["oip-v2"])
    async def server_metadata() -> dict[str, Any]:
        return {"name": "driftloop", "version": "0.1.0", "extensions": ["canary", "feedback"]}

    @app.get("/v2/health/live", tags=["oip-v2"])
    async def live() -> dict[str, bool]:
        return {"live": True}

    @app.get(
        "/v2/health/ready",
        response_model=Health,
        tags=["oip-v2"],
        responses={503: {"model": Health}},
    )
    async def ready() -> JSONResponse:
        health = plane.health()
        return JSONResponse(health, status_code=503 if health["status"] == "not_ready" else 200)

    @app.get("/v2/models/{name}", response_model=ModelMetadata, tags=["oip-v2"], responses=ERRORS)
    async def model_metadata(name: str) -> dict[str, Any]:
        return plane.metadata(name)

    @app.get(
        "/v2/models/{name}/versions/{version}",
        response_model=ModelMetadata,
        tags=["oip-v2"],
        responses=ERRORS,
    )
    async def version_metadata(name: str, version: str) -> dict[str, Any]:
        return plane.metadata(name, version)

    @app.get("/v2/models/{name}/ready", tags=["oip-v2"], responses=ERRORS)
    async def model_ready(name: str) -> JSONResponse:
        ok = plane.model_ready(name)
        return JSONResponse({"name": name, "ready": ok}, status_code=200 if ok else 503)

    @app.get("/v2/models/{name}/versions/{version}/ready", tags=["oip-v2"], responses=ERRORS)
    async def version_ready(name: str, version: str) -> JSONResponse:
        ok = plane.model_ready(name, version)
        return JSONResponse(
            {"name": name, "version": version, "ready": ok}, status_code=200 if ok else 503
        )

    infer_doc: dict[str, Any] = {
        "tags": ["oip-v2"],
        "response_model": InferenceResponse,
        "responses": {**ERRORS, 500: {"model": ErrorResponse}},
        "openapi_extra": _body("InferenceRequest"),
    }

    @app.post("/v2/models/{name}/infer", **infer_doc)
    async def infer(name: str, request: Request) -> Response:
        """Predict P(arrival delay > 15 min) for every row (encoding: see InferenceRequest)."""
        auth.require(request.headers.get("authorization"), PREDICT)
        body = await read_body(request)
        return Response(await plane.infer(name, body), media_type=JSON)

    @app.post("/v2/models/{name}/versions/{version}/infer", **infer_doc)
    async def infer_version(name: str, version: str, request: Request) -> Response:
        """Predict with one loaded version (champion or challenger), bypassing the router."""
        auth.require(request.headers.get("authorization"), PREDICT)
        body = await read_body(request)
        return Response(await plane.infer(name, body, version), media_type=JSON)

    @app.post(
        "/v2/models/{name}/feedback",
        response_model=FeedbackResponse,
        tags=["feedback"],
        responses=ERRORS,
        openapi_extra=_body("FeedbackRequest"),
    )
    async def post_feedback(name: str, request: Request) -> dict[str, int]:
        """Ground truth for earlier predictions: joined to the inference log by prediction id."""
        auth.require(request.headers.get("authorization"), PREDICT)
        return plane.feedback(name, await read_body(request))

    @app.get("/metrics", tags=["ops"])
    async def prometheus() -> Response:
        metrics.set_state(plane.health())
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    # -- admin -----------------------------------------------------------------------------
    @app.get("/admin/state", tags=["admin"], responses=ERRORS)
    async def admin_state(request: Request) -> dict[str, Any]:
        """What serves here, and the rollout's live numbers from the inference log."""
        auth.require(request.headers.get("authorization"), ADMIN)
        from driftloop.monitoring.canary import rollout_status

        status = await asyncio.to_thread(rollout_status, settings)
        return {"replica": plane.health(), "rollout": status}

    @app.get("/admin/audit", tags=["admin"], responses=ERRORS)
    async def admin_audit(request: Request) -> list[dict[str, Any]]:
        auth.require(request.headers.get("authorization"), ADMIN)
        from driftloop.registry.promotion import read_audit

        return await asyncio.to_thread(read_audit, settings)

    @app.post(
        "/admin/weight", tags=["admin"], responses=ERRORS, openapi_extra=_body("WeightRequest")
    )
    async def admin_weight(request: Request) -> dict[str, Any]:
        """Set the challenger's traffic share (percent) in the registry."""
        actor = auth.require(request.headers.get("authorization"), ADMIN)
        req = parse(WeightRequest, await read_body(request))
        from driftloop.registry.promotion import set_weight

        record = await asyncio.to_thread(set_weight, req.weight, actor, req.reason, settings)
        await reconciler.reconcile_now()
        return record

    @app.post(
        "/admin/promote", tags=["admin"], responses=ERRORS, openapi_extra=_body("ActionRequest")
    )
    async def admin_promote(request: Request) -> dict[str, Any]:
        """champion <- challenger; drop challenger; weight 0 (409 without a challenger)."""
        actor = auth.require(request.headers.get("authorization"), ADMIN)
        req = parse(ActionRequest, await read_body(request))
        from driftloop.registry.promotion import promote

        record = await asyncio.to_thread(promote, actor, req.reason, req.metrics, settings)
        await reconciler.reconcile_now()
        return record

    @app.post(
        "/admin/rollback", tags=["admin"], responses=ERRORS, openapi_extra=_body("ActionRequest")
    )
    async def admin_rollback(request: Request) -> dict[str, Any]:
        """Drop the challenger; weight 0 (409 without a challenger)."""
        actor = auth.require(request.headers.get("authorization"), ADMIN)
        req = parse(ActionRequest, await read_body(request))
        from driftloop.registry.promotion import rollback

        record = await asyncio.to_thread(rollback, actor, req.reason, req.metrics, settings)
        await reconciler.reconcile_now()
        return record

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        models: list[type[BaseModel]] = [*_BODY_SCHEMAS.values(), WeightRequest, ActionRequest]
        _, top = models_json_schema(
            [(m, "validation") for m in models], ref_template="#/components/schemas/{model}"
        )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for key, value in top.get("$defs", {}).items():
            components.setdefault(key, value)
        schema["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
