"""What a user sees of a flow run in the Prefect UI: its logs (stored on the server while the
console stays quiet), a name that says what the run does, and an automation whose description
says what fires it and with which guards. Real Prefect (and MLflow) servers on 127.0.0.1."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from driftloop.settings import Settings, project_root

pytestmark = [pytest.mark.integration, pytest.mark.slow]

#: A flow run in its own process, as the worker starts one: prints the run id on stdout.
RUN_HOUSEKEEPING = (
    "import json\n"
    "from flows.housekeeping import housekeeping\n"
    "state = housekeeping(dry_run=True, return_state=True)\n"
    "print(json.dumps({'run': str(state.state_details.flow_run_id), 'ok': state.is_completed()}))\n"
)


def _logs_of(run_id: str) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    with get_client(sync_client=True) as client:
        return client.read_logs(
            log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[uuid.UUID(run_id)]))
        )


def _run_name(run_id: str) -> str:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return str(client.read_flow_run(uuid.UUID(run_id)).name)


def test_flow_run_logs_reach_the_server_and_the_console_stays_quiet(
    prefect_server: str,
    mlflow_server: str,
    make_settings: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from polling import wait_for

    from driftloop.embedded.services import service_env

    key = uuid.uuid4().hex[:8]
    settings = make_settings(
        mlflow_uri=mlflow_server,
        prefect_url=prefect_server,
        mlflow={"registered_model": f"logs-{key}", "experiment": f"logs-{key}"},
    )
    # What `driftloop demo` used to put in the environment the worker inherits: it quieted the
    # console by dropping every INFO record, the UI's logs included.
    monkeypatch.setenv("PREFECT_LOGGING_LEVEL", "WARNING")
    env = service_env(settings)
    env["DRIFTLOOP_MLFLOW__REGISTERED_MODEL"] = settings.mlflow.registered_model
    done = subprocess.run(
        [sys.executable, "-c", RUN_HOUSEKEEPING],
        env=env,
        cwd=str(project_root()),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["ok"], done.stderr[-2000:]
    # the console: nothing below WARNING (Prefect's INFO lines read "| INFO    |")
    assert "INFO" not in done.stderr, done.stderr[-2000:]
    assert "housekeeping (dry run)" not in done.stderr

    def stored() -> list[str]:
        return [f"{log.name}: {log.message}" for log in _logs_of(out["run"])]

    def flow_logged() -> list[str]:
        messages = stored()
        return messages if any(m.startswith("prefect.flow_runs:") for m in messages) else []

    messages = wait_for(flow_logged, 60, "the flow run's logs on the server", every=0.5)
    text = "\n".join(messages)
    # the flow's own line (get_run_logger), the task run's, and the library's (extra logger)
    assert "prefect.flow_runs: housekeeping (dry run): 0 removed" in text, text
    assert any(m.startswith("prefect.task_runs:") for m in messages), text
    assert "driftloop.loop.housekeeping: housekeeping (dry run): 0 items" in text, text
    assert _run_name(out["run"]) == "housekeeping (dry run)"


def test_runs_are_named_by_what_they_do(
    prefect_server: str, mlflow_server: str, make_settings: Callable[..., Settings]
) -> None:
    """Each naming function under Prefect's own name resolution (a flow with the real flow's
    parameters; running the real retrain or monitor here would train a model)."""
    from prefect import flow

    from flows import names

    key = uuid.uuid4().hex[:8]
    make_settings(
        mlflow_uri=mlflow_server,
        prefect_url=prefect_server,
        mlflow={"registered_model": f"names-{key}", "experiment": f"names-{key}"},
        monitoring={"window_minutes": 90},
    )

    def name_of(run_name: Callable[[], str], fn: Callable[..., Any], **params: Any) -> str:
        state = flow(name=f"naming-{key}", flow_run_name=run_name)(fn)(**params, return_state=True)
        return _run_name(str(state.state_details.flow_run_id))

    def retrain(
        start_month: str | None = None,
        end_month: str | None = None,
        reason: str = "",
        source: str = "manual",
        force: bool = False,
        rollout: bool = True,
    ) -> None:
        del start_month, end_month, reason, source, force, rollout

    reason = "observed ROC AUC 0.571 [0.550, 0.590] < KPI 0.602 (holdout 0.632 - 0.03)"
    assert (
        name_of(
            names.retrain_run_name,
            retrain,
            start_month="2013-02",
            end_month="2013-04",
            reason=reason,
            source="automation:8c1e",
        )
        == "retrain 2013-02..2013-04 (drift: performance)"
    )
    assert (
        name_of(names.retrain_run_name, retrain, source="schedule:weekly")
        == "retrain newest months (weekly schedule)"
    )

    def monitor(
        start: str | None = None,
        end: str | None = None,
        model_version: str | None = None,
        trigger: bool = True,
    ) -> None:
        del start, end, model_version, trigger

    assert (
        name_of(names.monitor_run_name, monitor, start="2013-05-01", end="2013-05-08")
        == "monitor 2013-05-01..07"
    )
    assert name_of(names.monitor_run_name, monitor, model_version="3") == "monitor last 90 min v3"

    def ingest(start_month: str = "2013-01", end_month: str = "2013-03") -> None:
        del start_month, end_month

    assert name_of(names.ingest_run_name, ingest, start_month="2013-05", end_month="2013-05") == (
        "ingest 2013-05"
    )
    assert name_of(names.ingest_run_name, ingest) == "ingest 2013-01..2013-03"

    def rollout(weight: int | None = None) -> None:
        del weight

    # no challenger registered: the version is left out, the weight is the setting's
    assert name_of(names.rollout_run_name, rollout) == "rollout canary 10%"
    # in shadow mode the challenger answers nobody: the weight is the share it scores copies of
    make_settings(
        mlflow_uri=mlflow_server,
        prefect_url=prefect_server,
        mlflow={"registered_model": f"names-{key}", "experiment": f"names-{key}"},
        serving={"mode": "shadow"},
    )
    assert name_of(names.rollout_run_name, rollout, weight=100) == "rollout shadow 100%"
    # the registry's mode (driftloop rollout mode canary) overrides the setting, as in serving
    from mlflow import MlflowClient

    from driftloop.registry.client import MODE_TAG

    MlflowClient(mlflow_server).create_registered_model(f"names-{key}", tags={MODE_TAG: "canary"})
    assert name_of(names.rollout_run_name, rollout, weight=20) == "rollout canary 20%"

    def tune(start_month: str = "2013-01", end_month: str = "2013-03", trials: int = 10) -> None:
        del start_month, end_month, trials

    assert name_of(names.tune_run_name, tune, trials=4) == "tune 2013-01..2013-03 (4 trials)"

    def renamed() -> None:
        names.rename_run("monitor 2013-05 v3: drift (2026-12-01 11:02..11:09)")

    assert name_of(names.monitor_run_name, renamed) == (
        "monitor 2013-05 v3: drift (2026-12-01 11:02..11:09)"
    )


def test_a_name_never_fails_the_run(prefect_server: str) -> None:
    """A parameter the name cannot use falls back to the flow's name; the run goes on."""
    from prefect import flow

    from flows.names import monitor_run_name

    @flow(name="naming-fallback", flow_run_name=monitor_run_name)
    def bad(start: str = "not a time", end: str = "neither") -> str:
        return f"{start} {end}"

    state = bad(return_state=True)
    assert state.is_completed()
    assert _run_name(str(state.state_details.flow_run_id)) == "monitor"


def test_the_automation_says_what_fires_it_and_with_which_guards(
    make_settings: Callable[..., Settings],
) -> None:
    from driftloop.loop.automations import build_automation

    settings = make_settings(
        monitoring={
            "retrain_cooldown_minutes": 17,
            "daily_retrain_budget": 3,
            "min_rows": 250,
            "importance_drift_threshold": 0.4,
        },
        kpi={"min_auc": 0.61},
    )
    text = build_automation(settings, str(uuid.uuid4())).description
    for phrase in (
        "retrain/retrain deployment",
        "driftloop.drift.detected",
        f"model {settings.mlflow.registered_model}",
        "at most one run per 17 min",
        "at least 250 rows",
        "kpi.min_auc 0.61",
        "at least 40% of the permutation importance",
        "budget 3 retrains a day",
        "driftloop.drift.suppressed",
    ):
        assert phrase in text, phrase
