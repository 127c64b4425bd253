"""Operations endpoints: Prometheus metrics (no auth, like ``/v2/health/*``)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from serving.metrics import CONTENT_TYPE_LATEST
from serving.routes.deps import MetricsDep, PlaneDep

router = APIRouter(tags=["ops"])


@router.get("/metrics")
async def prometheus(metrics: MetricsDep, plane: PlaneDep) -> Response:
    metrics.set_state(plane.health())
    return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)
