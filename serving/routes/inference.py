"""Open Inference Protocol v2: server and model metadata, health, readiness and inference.

``GET /v2/health/ready`` answers 200 ``ready``, 200 ``degraded`` (models serve but the registry
is unreachable) or 503 ``not_ready`` (no champion yet).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from driftloop import __version__
from serving.routes.deps import InferenceDep, PlaneDep
from serving.routes.openapi import ERRORS, JSON, documented_body
from serving.schemas import (
    ErrorResponse,
    Health,
    InferenceRequest,
    InferenceResponse,
    ModelMetadata,
    ServerMetadata,
)

router = APIRouter(tags=["oip-v2"])

_INFER_DOC: dict[str, Any] = {
    "response_model": InferenceResponse,
    "responses": {**ERRORS, 500: {"model": ErrorResponse}},
    "openapi_extra": documented_body(InferenceRequest),
}


@router.get("/v2", response_model=ServerMetadata)
async def server_metadata() -> dict[str, Any]:
    return {"name": "driftloop", "version": __version__, "extensions": ["canary", "feedback"]}


@router.get("/v2/health/live")
async def live() -> dict[str, bool]:
    return {"live": True}


@router.get("/v2/health/ready", response_model=Health, responses={503: {"model": Health}})
async def ready(plane: PlaneDep) -> JSONResponse:
    health = plane.health()
    return JSONResponse(health, status_code=503 if health["status"] == "not_ready" else 200)


@router.get("/v2/health/replica")
async def replica(plane: PlaneDep) -> JSONResponse:
    """Kubernetes readiness of this replica (not part of the OIP): 200 when it serves the
    champion, or when the registry names no champion yet (a fresh install, where every replica
    answers 503 itself); 503 while a champion exists that it has not loaded."""
    ok, why = plane.reconciler.takes_traffic()
    return JSONResponse({"ready": ok, "reason": why}, status_code=200 if ok else 503)


@router.get("/v2/models/{name}", response_model=ModelMetadata, responses=ERRORS)
async def model_metadata(name: str, plane: PlaneDep) -> dict[str, Any]:
    return plane.metadata(name)


@router.get("/v2/models/{name}/versions/{version}", response_model=ModelMetadata, responses=ERRORS)
async def version_metadata(name: str, version: str, plane: PlaneDep) -> dict[str, Any]:
    return plane.metadata(name, version)


@router.get("/v2/models/{name}/ready", responses=ERRORS)
async def model_ready(name: str, plane: PlaneDep) -> JSONResponse:
    ok = plane.model_ready(name)
    return JSONResponse({"name": name, "ready": ok}, status_code=200 if ok else 503)


@router.get("/v2/models/{name}/versions/{version}/ready", responses=ERRORS)
async def version_ready(name: str, version: str, plane: PlaneDep) -> JSONResponse:
    ok = plane.model_ready(name, version)
    return JSONResponse(
        {"name": name, "version": version, "ready": ok}, status_code=200 if ok else 503
    )


@router.post("/v2/models/{name}/infer", **_INFER_DOC)
async def infer(name: str, call: InferenceDep) -> Response:
    """Predict P(arrival delay > 15 min) for every row (encoding: see InferenceRequest)."""
    answer = await call.plane.infer(
        name, call.body, synthetic=call.synthetic, authorization=call.authorization
    )
    return Response(answer, media_type=JSON)


@router.post("/v2/models/{name}/versions/{version}/infer", **_INFER_DOC)
async def infer_version(name: str, version: str, call: InferenceDep) -> Response:
    """Predict with one loaded version (champion or challenger), bypassing the router."""
    answer = await call.plane.infer(
        name, call.body, version, synthetic=call.synthetic, authorization=call.authorization
    )
    return Response(answer, media_type=JSON)
