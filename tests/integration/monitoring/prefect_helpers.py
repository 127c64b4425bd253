"""Polling helpers of the closed-loop tests (real Prefect server)."""

from __future__ import annotations

import uuid
from typing import Any


def flow_runs_of(deployment_id: str) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    with get_client(sync_client=True) as client:
        return client.read_flow_runs(
            deployment_filter=DeploymentFilter(
                id=DeploymentFilterId(any_=[uuid.UUID(deployment_id)])
            )
        )
