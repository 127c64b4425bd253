"""The closed loop end to end, shortened: a drift event -> the Prefect automation -> exactly one
run of the real ``retrain`` deployment on a real worker (ingest -> features -> train + gate ->
rollout) -> the outcome in the ledger; a second event inside the cooldown starts nothing.

Real parts: MLflow and Prefect servers, DVC data repo, Feast repo, torch training, the worker
process (started and stopped here). No serving process runs, so a challenger's canary gets no
traffic and is rolled back after the (demo-sized) wait: that reason is the recorded outcome;
a model rejected by the gate is recorded as such. Either way serving state stays consistent.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from child_env import settings_env
from polling import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.integration]


@pytest.fixture
def loop_state(mlflow_server: str, prefect_server: str, make_settings: Any) -> Any:
    """Settings with three ingested months, features built, and a first champion (v1)."""
    from driftloop.data.ingest import ingest_months
    from driftloop.features import apply, build_sources, materialize
    from driftloop.training.pipeline import train_and_register

    key = uuid.uuid4().hex[:6]
    settings = make_settings(
        mlflow_uri=mlflow_server,
        prefect_url=prefect_server,
        mlflow={"registered_model": f"e2e-loop-{key}", "experiment": f"e2e-loop-{key}"},
        training={"epochs": 2, "batch_size": 2048},
        rollout={"max_minutes": 0.1, "poll_s": 1.0, "min_requests": 5},
        monitoring={"retrain_cooldown_minutes": 10.0, "daily_retrain_budget": 4},
    )
    ingest_months(["2013-01", "2013-02", "2013-03"], settings)
    build_sources(None, settings)
    apply(settings)
    materialize(None, settings)
    first = train_and_register("2013-01", "2013-01", settings)
    if first.gate != "champion":  # a tiny first model may miss the baseline margin: crown it
        from driftloop.registry.client import CHAMPION
        from driftloop.registry.promotion import assign_alias_after_gate

        assign_alias_after_gate(first.version, CHAMPION, "crowned by the test", settings=settings)
    return settings


@pytest.fixture
def retrain_deployment(loop_state: Any) -> tuple[str, str]:
    """The real flows/retrain.py as deployment retrain/retrain on a fresh process pool."""
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate

    from driftloop.settings import project_root

    pool = f"e2e-pool-{uuid.uuid4().hex[:6]}"
    with get_client(sync_client=True) as client:
        client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
    retrain = flow.from_source(source=str(project_root()), entrypoint="flows/retrain.py:retrain")
    deployment_id = retrain.deploy(  # type: ignore[union-attr]
        name="retrain", work_pool_name=pool, build=False, push=False, print_next_steps=False
    )
    return str(deployment_id), pool


def flow_runs(deployment_id: str) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    with get_client(sync_client=True) as client:
        return client.read_flow_runs(
            deployment_filter=DeploymentFilter(
                id=DeploymentFilterId(any_=[uuid.UUID(deployment_id)])
            )
        )


def test_drift_event_retrains_once_through_the_automation_and_records_the_outcome(
    loop_state: Any, retrain_deployment: tuple[str, str], tmp_path: Path
) -> None:
    from driftloop.loop.automations import ensure_automations
    from driftloop.loop.decisions import get_decision, replay
    from driftloop.loop.events import DRIFT_EVENT
    from driftloop.loop.ledger import list_retrains
    from driftloop.loop.trigger import emit_event
    from driftloop.registry.client import CHALLENGER, CHAMPION, get_alias
    from driftloop.registry.promotion import read_audit

    settings = loop_state
    deployment_id, pool = retrain_deployment
    ensure_automations(settings)
    log = tmp_path / "worker.log"
    with log.open("ab") as out:
        worker = subprocess.Popen(
            [str(Path(sys.executable).with_name("prefect")), "worker", "start", "--pool", pool],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=settings_env(settings),
            start_new_session=True,
        )
    try:
        before = {r.id for r in flow_runs(deployment_id)}
        payload = {"start_month": "2013-01", "end_month": "2013-02", "reason": "e2e drift"}
        event_id = emit_event(DRIFT_EVENT, settings.mlflow.registered_model, payload, settings)
        run = wait_for(
            lambda: next((r for r in flow_runs(deployment_id) if r.id not in before), None),
            timeout=60,
            what="the automation to start a retrain run",
            every=1.0,
        )
        assert run.parameters["source"] == f"automation:{event_id}"
        # A second drift inside the cooldown starts nothing.
        emit_event(DRIFT_EVENT, settings.mlflow.registered_model, payload, settings)

        def finished() -> Any:
            from prefect.client.orchestration import get_client

            with get_client(sync_client=True) as client:
                state = client.read_flow_run(run.id).state
            return state if state is not None and state.is_final() else None

        state = wait_for(
            finished, timeout=600, what=f"retrain run {run.name} (log {log})", every=1.0
        )
        assert state.is_completed(), f"{state.name}: {state.message} (worker log {log})"
        assert {r.id for r in flow_runs(deployment_id)} - before == {run.id}
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(timeout=10)

    records = [r for r in list_retrains(settings) if r.source == f"automation:{event_id}"]
    assert len(records) == 1
    outcome = records[0].outcome
    assert records[0].status == "finished"
    assert outcome["window"] == "2013-01..2013-02"
    assert outcome["holdout_month"] == "2013-03"
    assert outcome["gate"] in ("challenger", "rejected")
    assert get_alias(CHALLENGER, settings) is None  # no canary is left half-way
    champion = get_alias(CHAMPION, settings)
    assert champion is not None
    if outcome["gate"] == "challenger":
        # No serving here: the canary saw no request, so the rollout rolled back and said why,
        # and its decision record replays to the same answer.
        assert outcome["rollout"] == "rollback"
        assert "the challenger served no routed request" in outcome["rollout_reasons"]
        record = get_decision(outcome["rollout_decision"], settings)
        assert record["applied"] is True
        assert replay(record)["same"]
        assert champion.version == "1"
        actions = [(a["action"], a["from_version"]) for a in read_audit(settings)]
        assert ("rollback", outcome["version"]) in actions
    else:
        assert "rejected" in outcome["rollout"]
        assert champion.version == "1"
