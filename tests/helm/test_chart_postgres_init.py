"""The chart's PostgreSQL init script (ConfigMap <release>-driftloop-postgresql-init) against a
real PostgreSQL server: it creates the MLflow and Prefect users without superuser rights, their
databases closed to each other, is idempotent, and applies a rotated password when run again.

The server listens on a Unix socket in a temporary folder only (no TCP port). The local
PostgreSQL major version may be older than the chart's image (17); the script needs >= 15
(psql's \\getenv). Skipped when the PostgreSQL server binaries are not installed."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from chart_support import NEW_KUBE

pytestmark = [pytest.mark.helm, pytest.mark.integration]

BINARIES = ("initdb", "pg_ctl", "psql")
# PostgreSQL refuses to run as root: drop to nobody when the tests run as root.
AS_SERVER_USER = (
    ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"] if os.geteuid() == 0 else []
)


def run(cmd: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*AS_SERVER_USER, *cmd], capture_output=True, text=True, timeout=120, env=env, check=False
    )


@pytest.fixture(scope="module")
def server() -> Iterator[Path]:
    if not all(shutil.which(b) for b in BINARIES):
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl, psql) are not installed")
    if AS_SERVER_USER and not shutil.which("setpriv"):
        pytest.skip("running as root without setpriv to drop to an unprivileged user")
    # Not under pytest's tmp folder: its parents are private to the test user.
    with tempfile.TemporaryDirectory(prefix="driftloop-pg-") as name:
        folder = Path(name)
        if AS_SERVER_USER:
            shutil.chown(folder, "nobody")
        yield from _serve(folder)


def _serve(folder: Path) -> Iterator[Path]:
    data = folder / "data"
    init = run(["initdb", "-D", str(data), "-U", "postgres", "--auth-local=trust"])
    assert init.returncode == 0, init.stderr
    # Like the official image: the superuser over the local socket, everyone else by password.
    (data / "pg_hba.conf").write_text("local all postgres trust\nlocal all all scram-sha-256\n")
    options = f"-c listen_addresses='' -k {folder}"
    # -l: the server must not inherit our pipes (run() would wait for them to close).
    log = folder / "server.log"
    start = run(["pg_ctl", "-D", str(data), "-o", options, "-l", str(log), "-w", "start"])
    assert start.returncode == 0, start.stderr + (log.read_text() if log.exists() else "")
    try:
        yield folder
    finally:
        run(["pg_ctl", "-D", str(data), "-m", "fast", "-w", "stop"])


@pytest.fixture(scope="module")
def script(render: Callable[..., list[dict[str, Any]]], server: Path) -> Path:
    docs = render("default", NEW_KUBE)
    (cm,) = [d for d in docs if d["metadata"]["name"] == "rel-driftloop-postgresql-init"]
    path = server / "10-driftloop-users.sh"
    path.write_text(cm["data"]["10-driftloop-users.sh"])
    path.chmod(0o555)
    return path


def env_for(server: Path, mlflow_password: str, prefect_password: str) -> dict[str, str]:
    """What the StatefulSet gives the postgres container (values from the default render)."""
    return {
        "PATH": os.environ["PATH"],
        "PGHOST": str(server),
        "POSTGRES_USER": "postgres",
        "POSTGRES_DB": "postgres",
        "DRIFTLOOP_MLFLOW_DB_USER": "mlflow",
        "DRIFTLOOP_MLFLOW_DB_PASSWORD": mlflow_password,
        "DRIFTLOOP_MLFLOW_DB": "mlflow",
        "DRIFTLOOP_MLFLOW_AUTH_DB": "mlflow_auth",
        "DRIFTLOOP_PREFECT_DB_USER": "prefect",
        "DRIFTLOOP_PREFECT_DB_PASSWORD": prefect_password,
        "DRIFTLOOP_PREFECT_DB": "prefect",
    }


def psql(
    server: Path, user: str, password: str, db: str, sql: str
) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ["PATH"], "PGHOST": str(server), "PGPASSWORD": password}
    return run(["psql", "-v", "ON_ERROR_STOP=1", "-tA", "-U", user, "-d", db, "-c", sql], env)


def test_init_script_creates_unprivileged_users_with_their_own_databases(
    server: Path, script: Path
) -> None:
    # A quote in a password must not break the SQL (psql variables, not string pasting).
    first = run([str(script)], env_for(server, "mlflow-pw-1", "prefect'pw-1"))
    assert first.returncode == 0, first.stderr
    again = run([str(script)], env_for(server, "mlflow-pw-1", "prefect'pw-1"))
    assert again.returncode == 0, again.stderr  # idempotent

    who = psql(
        server,
        "mlflow",
        "mlflow-pw-1",
        "mlflow",
        "select rolsuper, rolcreatedb, rolcreaterole from pg_roles where rolname = current_user",
    )
    assert who.returncode == 0, who.stderr
    assert who.stdout.strip() == "f|f|f"
    for db in ("mlflow", "mlflow_auth"):
        owned = psql(server, "mlflow", "mlflow-pw-1", db, "create table t (x int); drop table t")
        assert owned.returncode == 0, owned.stderr
    prefect = psql(server, "prefect", "prefect'pw-1", "prefect", "create table t (x int)")
    assert prefect.returncode == 0, prefect.stderr

    # Each user is closed out of the other's databases and the superuser's.
    for user, password, db in (
        ("mlflow", "mlflow-pw-1", "prefect"),
        ("prefect", "prefect'pw-1", "mlflow"),
        ("prefect", "prefect'pw-1", "mlflow_auth"),
        ("mlflow", "mlflow-pw-1", "postgres"),
    ):
        denied = psql(server, user, password, db, "select 1")
        assert denied.returncode != 0, (user, db)
        assert "CONNECT" in denied.stderr or "permission denied" in denied.stderr


def test_running_the_script_again_applies_a_rotated_password(server: Path, script: Path) -> None:
    assert run([str(script)], env_for(server, "mlflow-pw-1", "prefect-pw-1")).returncode == 0
    rotated = run([str(script)], env_for(server, "mlflow-pw-2", "prefect-pw-1"))
    assert rotated.returncode == 0, rotated.stderr
    assert psql(server, "mlflow", "mlflow-pw-2", "mlflow", "select 1").returncode == 0
    old = psql(server, "mlflow", "mlflow-pw-1", "mlflow", "select 1")
    assert old.returncode != 0
    assert "password authentication failed" in old.stderr
