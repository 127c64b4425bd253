"""The ingest flow's profile artifacts on a real Prefect server: each ingested partition's profile
as a table, and the shift report, which opens with a WARNING when a planted shift is flagged."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from driftloop.settings import Settings

pytestmark = pytest.mark.integration


def _artifacts(flow_run_id: Any) -> dict[str, str]:
    """``{key: markdown}`` of the artifacts one flow run created."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    query = ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=query)
    return {a.key: str(a.data) for a in found if a.key}


def test_ingest_flow_shows_profiles_and_warns_on_a_planted_shift(
    prefect_server: str,
    make_settings: Callable[..., Settings],
    make_dataset: Callable[[pd.DataFrame], Path],
    real_jan_flights: pd.DataFrame,
) -> None:
    from flows.ingest import ingest

    make_settings(prefect_url=prefect_server, data={"dataset_dir": make_dataset(real_jan_flights)})
    state = ingest(start_month="2013-01", end_month="2013-01", return_state=True)
    summary = state.result()
    assert summary["shift"]["status"] == "ok"
    first = _artifacts(state.state_details.flow_run_id)
    assert "### flights/2013-01: 2000 rows" in first["data-profile"]
    assert "| dep_delay | numeric |" in first["data-profile"]
    assert "### weather/2013-01:" in first["data-profile"]
    assert not first["data-profile-shift"].startswith("**WARNING")

    planted = real_jan_flights.copy()
    planted["distance"] = planted["distance"] * 1.5  # an upstream unit change
    make_dataset(planted)
    state = ingest(start_month="2013-01", end_month="2013-01", return_state=True)
    assert state.result()["shift"]["status"] == "flagged"
    shift = _artifacts(state.state_details.flow_run_id)["data-profile-shift"]
    assert shift.startswith("**WARNING: 1 shift(s) beyond the data profile limits**")
    assert "flights/2013-01.distance (revised vs flights/2013-01@" in shift
