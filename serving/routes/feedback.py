"""Ground truth for earlier predictions, joined to the inference log by prediction id.

Posting labels needs the ``feedback`` scope (admin tokens hold it too; predict tokens do not):
labels decide rollbacks, promotions and retrains. Refused calls are counted in ``/metrics`` by
reason (``driftloop_feedback_rejected_total``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from driftloop.errors import AuthenticationError, PermissionDeniedError
from serving.auth import FEEDBACK
from serving.routes.deps import BodyDep, PlaneDep, Services, admit_caller
from serving.routes.openapi import ERRORS, documented_body
from serving.schemas import FeedbackRequest, FeedbackResponse

router = APIRouter(tags=["feedback"])


async def feedback_actor(request: Request) -> str:
    """The caller's actor name if its token holds the feedback scope (401/403 otherwise,
    counted as a rejected label call)."""
    services: Services = request.app.state.services
    try:
        return admit_caller(services, request, FEEDBACK)
    except PermissionDeniedError:
        services.metrics.reject_feedback("forbidden")
        raise
    except AuthenticationError:
        services.metrics.reject_feedback("unauthenticated")
        raise


feedback_actor.required_scope = FEEDBACK  # type: ignore[attr-defined]  # read by openapi.py
FeedbackActor = Annotated[str, Depends(feedback_actor)]


@router.post(
    "/v2/models/{name}/feedback",
    response_model=FeedbackResponse,
    responses=ERRORS,
    openapi_extra=documented_body(FeedbackRequest),
)
async def post_feedback(
    name: str, actor: FeedbackActor, body: BodyDep, plane: PlaneDep
) -> dict[str, int]:
    """Labels (1 = arrived > 15 min late) by request id or by prediction ids, for served
    predictions only; the first label of a prediction wins (later ones are conflicts)."""
    return await plane.feedback(name, body, actor)
