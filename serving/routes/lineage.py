"""``GET /v2/models/{name}/lineage/{lineage_id}``: the lineage behind a prediction.

Every inference response carries ``parameters.lineage_id`` (and the capture stores it): the
answering version and digests of its training run, data revision and feature service
(:func:`driftloop.data.capture.lineage_id`, computed once when the version is loaded). This
route turns it back into the full lineage from the registry: version, run id, data revision and
partition hashes, feature service, git commit, links to the MLflow pages. Predict scope (the
callers that get lineage ids). A malformed id is 400 before the registry is asked; an id whose
version does not exist, or whose digests are not that version's, is 404.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter

from driftloop.data.capture import parse_lineage_id, resolve_lineage
from serving.routes.deps import PlaneDep, PredictActor
from serving.routes.openapi import ERRORS
from serving.schemas import LineageResponse

router = APIRouter(tags=["lineage"])


@router.get(
    "/v2/models/{name}/lineage/{lineage_id}", response_model=LineageResponse, responses=ERRORS
)
async def lineage(
    name: str, lineage_id: str, _actor: PredictActor, plane: PlaneDep
) -> dict[str, Any]:
    """The model version, training run, data revision, feature service, git commit and links
    behind a response's ``parameters.lineage_id``."""
    plane.check_model(name)
    parse_lineage_id(lineage_id)  # 400 for a malformed id, before any registry call
    # the registry client blocks: off the event loop
    return await asyncio.to_thread(resolve_lineage, lineage_id, plane.settings, name)
