"""Fixtures of the closed-loop integration tests: a process work pool on the real Prefect server,
deployments of small probe flows, and a real Prefect worker process that the test starts and
stops (nothing is mocked: the automation, the event pipeline and the worker are Prefect's)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

#: A stand-in for flows/retrain.py with the same name and parameters: it records what it got.
PROBE_FLOW = textwrap.dedent(
    """
    import json
    from pathlib import Path

    from prefect import flow
    from prefect.runtime import flow_run


    @flow(name="retrain")
    def retrain(
        start_month: str | None = None,
        end_month: str | None = None,
        reason: str = "",
        source: str = "manual",
        force: bool = False,
        rollout: bool = True,
    ) -> dict:
        got = {"start_month": start_month, "end_month": end_month, "reason": reason,
               "source": source}
        out = Path(__file__).parent / "runs"
        out.mkdir(exist_ok=True)
        (out / f"{flow_run.id}.json").write_text(json.dumps(got))
        return got
    """
)


def prefect_bin(name: str = "prefect") -> str:
    return str(Path(sys.executable).with_name(name))


@pytest.fixture(scope="module")
def work_pool(prefect_server: str) -> str:
    """A fresh process work pool on the session's Prefect server."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate

    name = f"test-pool-{uuid.uuid4().hex[:6]}"
    with get_client(sync_client=True) as client:
        client.create_work_pool(WorkPoolCreate(name=name, type="process"))
    return name


@pytest.fixture(scope="module")
def probe_deployment(
    prefect_server: str, work_pool: str, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, Path]:
    """Deployment ``retrain/retrain`` of the probe flow; returns its id and its runs folder."""
    from prefect import flow

    folder = tmp_path_factory.mktemp("probe")
    (folder / "probe.py").write_text(PROBE_FLOW)
    probe = flow.from_source(source=str(folder), entrypoint="probe.py:retrain")
    deployment_id = probe.deploy(  # type: ignore[union-attr]
        name="retrain", work_pool_name=work_pool, build=False, push=False, print_next_steps=False
    )
    return str(deployment_id), folder / "runs"


@pytest.fixture(scope="module")
def worker(prefect_server: str, work_pool: str, tmp_path_factory: pytest.TempPathFactory):
    """A real `prefect worker` for the pool, polling every second; stopped after the module."""
    home = tmp_path_factory.mktemp("worker-home")
    log = home / "worker.log"
    env = {
        **os.environ,
        "PREFECT_API_URL": prefect_server,
        "PREFECT_HOME": str(home),
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "PREFECT_WORKER_PREFETCH_SECONDS": "1",
    }
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [prefect_bin(), "worker", "start", "--pool", work_pool, "--type", "process"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    try:
        yield log
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def sentinel_automation(prefect_server: str) -> Iterator[str]:
    """Id of an automation that fires on every sentinel event and does nothing: its firings
    are the positive signal of ``prefect_helpers.wait_until_evaluated``. Deleted afterwards."""
    from prefect.automations import Automation, DoNothing, EventTrigger, Posture
    from prefect_helpers import SENTINEL_EVENT

    automation = Automation(
        name=f"test sentinel {uuid.uuid4().hex[:6]}",
        trigger=EventTrigger(
            expect={SENTINEL_EVENT},
            match={"prefect.resource.id": f"{SENTINEL_EVENT}.*"},
            posture=Posture.Reactive,
            threshold=1,
            within=timedelta(0),  # fires on each event
        ),
        actions=[DoNothing()],
    ).create()
    try:
        yield str(automation.id)
    finally:
        automation.delete()


@pytest.fixture
def loop_settings(make_settings: Any, prefect_server: str) -> Iterator[Any]:
    return make_settings(
        prefect_url=prefect_server,
        monitoring={"retrain_cooldown_minutes": 10.0, "daily_retrain_budget": 4},
    )
