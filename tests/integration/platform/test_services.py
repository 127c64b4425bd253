"""`driftloop up/status/down` against real MLflow and Prefect servers (no deployments here:
the deployment path is covered by the flow tests)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from driftloop.embedded.services import _group_alive, free_port

pytestmark = pytest.mark.integration

DRIFTLOOP = str(Path(sys.executable).with_name("driftloop"))


def _env(state: Path, mlflow_port: int, prefect_port: int) -> dict[str, str]:
    return {
        **os.environ,
        "DRIFTLOOP_STATE_DIR": str(state),
        "DRIFTLOOP_MLFLOW__PORT": str(mlflow_port),
        "DRIFTLOOP_PREFECT__PORT": str(prefect_port),
    }


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [DRIFTLOOP, *args], env=env, capture_output=True, text=True, timeout=300, check=False
    )


@pytest.mark.slow
def test_up_is_idempotent_status_reports_health_and_down_leaves_nothing(tmp_path: Path) -> None:
    mport, pport = free_port(), free_port()
    env = _env(tmp_path / "state", mport, pport)
    try:
        first = _run(["up", "--no-deploy"], env)
        assert first.returncode == 0, first.stderr
        assert httpx.get(f"http://127.0.0.1:{mport}/health").status_code == 200
        assert httpx.get(f"http://127.0.0.1:{pport}/api/health").status_code == 200
        pids = {p.stem: int(p.read_text()) for p in (tmp_path / "state" / "run").glob("*.pid")}
        assert set(pids) == {"mlflow", "prefect", "worker"}

        again = _run(["up", "--no-deploy"], env)
        assert again.returncode == 0, again.stderr
        assert "reused" in again.stderr
        assert {
            p.stem: int(p.read_text()) for p in (tmp_path / "state" / "run").glob("*.pid")
        } == pids

        status = _run(["status"], env)
        assert status.returncode == 0
        assert status.stdout.count("healthy") == 3
    finally:
        down = _run(["down"], env)
    assert down.returncode == 0
    assert "mlflow" in down.stdout
    for pid in pids.values():
        assert not _group_alive(pid)
    status = _run(["status"], env)
    assert status.returncode == 1
    assert status.stderr.strip().startswith("error: not all services are healthy")


def test_up_fails_clearly_when_a_port_is_held_by_something_else(tmp_path: Path) -> None:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    try:
        result = _run(["up", "--no-deploy"], _env(tmp_path / "state", port, free_port()))
    finally:
        holder.close()
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert lines[-1] == (
        f"error: port {port} is held by another process, not driftloop's mlflow: "
        "stop it or choose another port with DRIFTLOOP_MLFLOW__PORT=..."
    )
    assert not list((tmp_path / "state" / "run").glob("*.pid"))
