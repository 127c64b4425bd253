"""The drift automation on a real Prefect server: declared idempotently, fired by an emitted
event, templating the retrain window into the deployment's parameters, with a cooldown that
swallows a second event; a real worker runs the flow."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from polling import wait_for
from prefect_helpers import firings, flow_runs_of, wait_until_evaluated

from driftloop.errors import NotFoundError
from driftloop.loop.automations import automation_name, ensure_automations, read_automation
from driftloop.loop.events import DRIFT_EVENT
from driftloop.loop.trigger import emit_event

pytestmark = pytest.mark.integration


def test_ensure_automations_fails_clearly_without_the_retrain_deployment(
    make_settings: Any, prefect_server: str
) -> None:
    settings = make_settings(
        prefect_url=prefect_server, mlflow={"registered_model": "no-deployment-model"}
    )
    missing = "retrain/not-deployed-here"
    with pytest.raises(NotFoundError, match=missing) as err:
        ensure_automations(settings, retrain_deployment=missing)
    assert "prefect deploy" in str(err.value)  # says how to fix it
    assert read_automation(settings) is None  # nothing half-created


def test_ensure_automations_creates_once_then_updates_on_change(
    loop_settings: Any, probe_deployment: tuple[str, Path]
) -> None:
    deployment_id, _ = probe_deployment
    name = automation_name(loop_settings)
    # Schedules of other deployments on this shared server (housekeeping, deployed by another
    # test) may be set by the first call too: only the automation's own lines are judged here.
    first = ensure_automations(loop_settings)
    assert [line for line in first if line.endswith(name)] == [f"created {name}"]
    assert ensure_automations(loop_settings) == []  # idempotent: nothing to do
    auto = read_automation(loop_settings)
    assert auto is not None
    assert auto.enabled
    assert auto.trigger.within.total_seconds() == 600
    assert str(auto.actions[0].deployment_id) == deployment_id
    changed = loop_settings.model_copy(
        update={
            "monitoring": loop_settings.monitoring.model_copy(
                update={"retrain_cooldown_minutes": 5.0}
            )
        }
    )
    assert ensure_automations(changed) == [f"updated {automation_name(changed)}"]
    assert read_automation(changed).trigger.within.total_seconds() == 300
    assert ensure_automations(loop_settings)  # back to 10 minutes for the next test


def test_drift_event_runs_retrain_once_with_templated_window_and_cooldown_swallows_second(
    loop_settings: Any,
    probe_deployment: tuple[str, Path],
    worker: Path,
    sentinel_automation: str,
    prefect_server: str,
) -> None:
    deployment_id, runs_dir = probe_deployment
    ensure_automations(loop_settings)
    model = loop_settings.mlflow.registered_model
    # The session's Prefect server may hold earlier runs of retrain/retrain (the e2e test's).
    seen = {r.id for r in flow_runs_of(deployment_id)}
    before = len(seen)
    payload = {
        "start_month": "2013-03",
        "end_month": "2013-05",
        "holdout_month": "2013-06",
        "reason": "data drift: share 0.45",
    }
    event_id = emit_event(DRIFT_EVENT, model, payload, loop_settings)
    runs = wait_for(
        lambda: (r := flow_runs_of(deployment_id)) and len(r) > before and r,
        timeout=60,
        what="the automation to create a retrain flow run",
        every=0.5,
    )
    assert len(runs) == before + 1
    (run,) = [r for r in runs if r.id not in seen]
    assert run.parameters["source"].startswith("automation:")
    assert run.parameters["start_month"] == "2013-03"
    assert run.parameters["end_month"] == "2013-05"
    assert run.parameters["reason"] == "data drift: share 0.45"
    assert run.parameters["source"] == f"automation:{event_id}"

    # The server records the firing (what the checks below find none of for later events).
    automation = str(read_automation(loop_settings).id)
    wait_for(
        lambda: firings([event_id]) == {event_id: [automation]},
        timeout=30,
        what=f"the automation's firing on event {event_id} to be stored",
        every=0.5,
    )

    # Inside the automation's cooldown (10 min): a second event starts nothing.
    second = emit_event(DRIFT_EVENT, model, {**payload, "start_month": "2013-04"}, loop_settings)
    # A different model's event is a different bucket: it is not swallowed by this cooldown,
    # but the automation only matches its own model, so it starts nothing either.
    other = emit_event(DRIFT_EVENT, "another-model", payload, loop_settings)
    # Positive signal: the server has evaluated both events (sentinels that follow them fired).
    wait_until_evaluated(prefect_server, [second, other], sentinel_automation)
    assert firings([second, other]) == {second: [], other: []}
    assert len(flow_runs_of(deployment_id)) == before + 1

    # The worker ran the flow with the templated parameters.
    out = wait_for(
        lambda: (p := runs_dir / f"{run.id}.json").exists() and p,
        timeout=120,
        what=f"the worker to run flow run {run.id} (log: {worker})",
        every=0.5,
    )
    got = json.loads(out.read_text())
    assert got == {
        "start_month": "2013-03",
        "end_month": "2013-05",
        "reason": "data drift: share 0.45",
        "source": f"automation:{event_id}",
    }


MONITOR_PROBE = """
from prefect import flow


@flow(name="monitor")
def monitor(window_minutes: float | None = None) -> None:
    pass
"""


def test_monitor_schedule_follows_settings_and_pauses_when_disabled(
    loop_settings: Any, work_pool: str, tmp_path: Path
) -> None:
    from prefect import flow

    from driftloop.loop.automations import ensure_monitor_schedule, prefect_client

    (tmp_path / "monitor_probe.py").write_text(MONITOR_PROBE)
    probe = flow.from_source(source=str(tmp_path), entrypoint="monitor_probe.py:monitor")
    deployment_id = probe.deploy(  # type: ignore[union-attr]
        name="monitor", work_pool_name=work_pool, build=False, push=False, print_next_steps=False
    )

    def with_monitoring(**update: Any) -> Any:
        return loop_settings.model_copy(
            update={"monitoring": loop_settings.monitoring.model_copy(update=update)}
        )

    def schedules(client: Any) -> list[tuple[float, bool]]:
        return [
            (s.schedule.interval.total_seconds(), s.active)
            for s in client.read_deployment_schedules(deployment_id)
        ]

    every_7 = with_monitoring(schedule_minutes=7, schedule_enabled=True)
    with prefect_client(every_7) as client:
        assert ensure_monitor_schedule(every_7, client)
        assert not ensure_monitor_schedule(every_7, client)  # idempotent
        assert schedules(client) == [(420.0, True)]
        paused = with_monitoring(schedule_minutes=7, schedule_enabled=False)
        assert ensure_monitor_schedule(paused, client)
        assert schedules(client) == [(420.0, False)]
        every_3 = with_monitoring(schedule_minutes=3, schedule_enabled=True)
        assert ensure_monitor_schedule(every_3, client)
        assert schedules(client) == [(180.0, True)]
