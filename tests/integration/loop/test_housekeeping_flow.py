"""The ``housekeeping`` deployment as prefect.yaml declares it, registered on a real Prefect
server with every other deployment; its schedule following settings.retention; the flow run
in-process with its markdown artifact."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from driftloop.data.capture import PREDICTIONS, partition_dir
from driftloop.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_housekeeping_deployment_is_scheduled_daily_and_follows_settings(
    prefect_server: str, make_settings: Callable[..., Settings]
) -> None:
    from driftloop.embedded.deploy import deploy_all
    from driftloop.loop.automations import automation_name, prefect_client

    pool = f"test-pool-{uuid.uuid4().hex[:6]}"
    settings = make_settings(prefect_url=prefect_server, prefect={"work_pool": pool})
    with prefect_client(settings) as client:
        before = {d.id for d in client.read_deployments()}
        had_automation = bool(client.read_automations_by_name(automation_name(settings)))
    try:
        deploy_all(settings)  # `prefect deploy --all` on prefect.yaml
        _check_schedules(settings)
    finally:
        # The server is shared by the session: leave no deployment or automation behind
        # (tests/integration/monitoring expects to create the loop's automation itself).
        with prefect_client(settings) as client:
            for d in client.read_deployments():
                if d.id not in before:
                    client.delete_deployment(d.id)
            if not had_automation:
                for auto in client.read_automations_by_name(automation_name(settings)):
                    client.delete_automation(auto.id)


def _check_schedules(settings: Settings) -> None:
    from driftloop.loop.automations import prefect_client
    from driftloop.loop.housekeeping import HOUSEKEEPING_DEPLOYMENT, ensure_housekeeping_schedule

    pool = settings.prefect.work_pool

    def schedules(client: Any) -> list[tuple[str, str, bool]]:
        deployment = client.read_deployment_by_name(HOUSEKEEPING_DEPLOYMENT)
        return [
            (s.schedule.cron, s.schedule.timezone, s.active)
            for s in client.read_deployment_schedules(deployment.id)
        ]

    def with_retention(**values: Any) -> Settings:
        retention = settings.retention.model_copy(update=values)
        return settings.model_copy(update={"retention": retention})

    with prefect_client(settings) as client:
        deployment = client.read_deployment_by_name(HOUSEKEEPING_DEPLOYMENT)
        assert deployment.entrypoint == "flows/housekeeping.py:housekeeping"
        assert deployment.work_pool_name == pool
        assert schedules(client) == [("30 3 * * *", "UTC", True)]
        assert not ensure_housekeeping_schedule(settings, client)  # the default: unchanged
        hourly = with_retention(schedule_cron="0 * * * *")
        assert ensure_housekeeping_schedule(hourly, client)
        assert schedules(client) == [("0 * * * *", "UTC", True)]
        paused = with_retention(schedule_cron="0 * * * *", schedule_enabled=False)
        assert ensure_housekeeping_schedule(paused, client)
        assert schedules(client) == [("0 * * * *", "UTC", False)]


def test_flow_reports_as_a_markdown_artifact(
    prefect_server: str, mlflow_server: str, make_settings: Callable[..., Settings]
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from flows.housekeeping import housekeeping

    key = uuid.uuid4().hex[:8]
    settings = make_settings(
        mlflow_uri=mlflow_server,
        prefect_url=prefect_server,
        mlflow={"registered_model": f"hk-{key}", "experiment": f"hk-{key}"},
        retention={"captures_days": 10.0, "dry_run": True},
    )
    old = partition_dir(PREDICTIONS, (datetime.now(UTC) - timedelta(days=20)).date(), settings)
    old.mkdir(parents=True)
    (old / "part-a-1-0.parquet").write_bytes(b"x" * 100)

    result = housekeeping()  # dry_run from settings.retention.dry_run
    assert result["dry_run"] is True
    assert result["totals"]["captures"] == {"removed": 1, "bytes": 100, "kept": 0}
    assert old.exists()
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["housekeeping"]))
        )
    assert artifacts
    assert any(str(old.relative_to(settings.state)) in str(a.data) for a in artifacts)

    result = housekeeping(dry_run=False)
    assert result["totals"]["captures"]["removed"] == 1
    assert not old.exists()
