"""Ground truth for earlier predictions, joined to the inference log by prediction id."""

from __future__ import annotations

from fastapi import APIRouter

from serving.routes.deps import BodyDep, PlaneDep, PredictActor
from serving.routes.openapi import ERRORS, documented_body
from serving.schemas import FeedbackRequest, FeedbackResponse

router = APIRouter(tags=["feedback"])


@router.post(
    "/v2/models/{name}/feedback",
    response_model=FeedbackResponse,
    responses=ERRORS,
    openapi_extra=documented_body(FeedbackRequest),
)
async def post_feedback(
    name: str, _actor: PredictActor, body: BodyDep, plane: PlaneDep
) -> dict[str, int]:
    """Labels (1 = arrived > 15 min late) by request id or by prediction ids."""
    return plane.feedback(name, body)
