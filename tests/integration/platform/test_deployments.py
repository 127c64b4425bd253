"""Deployments from prefect.yaml on a real Prefect server, run by a real process worker."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_ingest_deployment_started_from_the_api_completes(
    prefect_server: str, make_settings: Any
) -> None:
    from prefect.client.schemas.objects import StateType
    from prefect.deployments import run_deployment

    from driftloop.embedded.deploy import deploy_all
    from driftloop.embedded.services import start_service, stop_service, worker_service

    settings = make_settings(prefect_url=prefect_server, prefect={"work_pool": "test-pool"})
    deploy_all(settings)
    worker = worker_service(settings)
    start_service(worker, settings)
    try:
        run = run_deployment(
            "ingest/ingest",
            parameters={"start_month": "2013-02", "end_month": "2013-02"},
            timeout=300,
        )
    finally:
        stop_service(worker, settings)
    assert run.state is not None
    assert run.state.type == StateType.COMPLETED, run.state.message
    # The worker's flow run wrote into this test's state folder (settings reach it by env).
    assert (settings.state / "datarepo" / "flights" / "2013-02.parquet").exists()
    summary = run.state.result()
    assert summary["partitions"]["flights/2013-02"]["rows_valid"] > 20_000
