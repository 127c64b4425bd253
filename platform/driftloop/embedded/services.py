"""The embedded platform: MLflow tracking server, Prefect server (with UI) and a Prefect worker,
run as background processes on 127.0.0.1 with pid and log files in the state folder.

``start_service`` is idempotent: a service whose pid file points at a live process that answers
its health endpoint is reused; a port held by anything else is an error that names the port and
the setting that moves it. ``stop_service`` terminates the process group and waits, so nothing is
left. :mod:`driftloop.embedded.platform` starts and stops them together.

Both servers are authenticated: MLflow runs its basic-auth app (``--app-name basic-auth``;
users and grants in :mod:`driftloop.registry.access`), Prefect requires its API auth string;
the secrets are generated into ``{state}/secrets`` (0600). Clients get what their role needs:
:func:`service_env` (worker, flow runs) the ``flows`` MLflow user and the Prefect string,
:func:`driftloop.settings.child_environ` (serving, anything else) the read-only ``serving``
user plus the ``rollout`` user for the registry writers, and no Prefect string.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from driftloop.errors import ServiceUnavailableError
from driftloop.logs import prefect_logging_env
from driftloop.settings import (
    MLFLOW_ADMIN,
    Settings,
    child_environ,
    embedded_mlflow_credentials,
    embedded_secret,
    mlflow_client_environ,
    prefect_auth_string,
    project_root,
)

logger = logging.getLogger(__name__)


def venv_bin(name: str) -> str:
    """A console script installed next to the running interpreter."""
    candidate = Path(sys.executable).with_name(name)
    return str(candidate) if candidate.exists() else name


@dataclass(frozen=True)
class Service:
    """One background process the platform runs."""

    name: str
    port: int | None
    health_url: str | None
    command: list[str]
    env: dict[str, str]
    port_setting: str = ""
    startup_timeout_s: float = 90.0


@dataclass
class ServiceStatus:
    name: str
    pid: int | None
    running: bool
    healthy: bool
    url: str | None
    log: Path

    def line(self) -> str:
        state = "healthy" if self.healthy else ("running" if self.running else "stopped")
        return (
            f"{self.name:<8} {state:<8} pid={self.pid or '-':<8} {self.url or ''}  log={self.log}"
        )


def run_dirs(settings: Settings) -> tuple[Path, Path]:
    run, logs = settings.state / "run", settings.state / "logs"
    run.mkdir(parents=True, exist_ok=True)
    logs.mkdir(parents=True, exist_ok=True)
    return run, logs


def service_env(settings: Settings) -> dict[str, str]:
    """Environment for processes that act as clients of the embedded platform."""
    env = child_environ(settings)
    env["DRIFTLOOP_STATE_DIR"] = str(settings.state)
    env["MLFLOW_TRACKING_URI"] = settings.mlflow.uri
    env["PREFECT_API_URL"] = settings.prefect.url
    env["DRIFTLOOP_MLFLOW__TRACKING_URI"] = settings.mlflow.uri
    env["DRIFTLOOP_PREFECT__API_URL"] = settings.prefect.url
    env["DRIFTLOOP_PROJECT_ROOT"] = str(project_root())
    # Flow results are kept (the UI and `run_deployment` callers can read them back).
    env["PREFECT_RESULTS_PERSIST_BY_DEFAULT"] = "true"
    env["PREFECT_LOCAL_STORAGE_PATH"] = str(settings.state / "prefect" / "results")
    # Flow and task logs go to the server (the UI's Logs tab); only the console (the worker's
    # log file) is quieted. Set here, not inherited: a parent that quieted Prefect's loggers
    # (PREFECT_LOGGING_LEVEL=WARNING) would silence every flow run in the UI.
    env.update(prefect_logging_env())
    # Flow runners train, register and move aliases: the `flows` MLflow user; and they talk
    # to the Prefect API, which wants its auth string.
    env.update(mlflow_client_environ(settings, "flows"))
    auth = prefect_auth_string(settings)
    if auth:
        env["PREFECT_API_AUTH_STRING"] = auth
    return env


def mlflow_auth_config(settings: Settings) -> Path:
    """``{state}/mlflow/basic_auth.ini`` for ``mlflow server --app-name basic-auth``: users in
    ``{state}/mlflow/auth.db``; an authenticated user without a grant can do nothing
    (``NO_PERMISSIONS``), an unauthenticated request gets 401. The admin password is not in
    the file: it comes from the environment on the first start only."""
    root = settings.state / "mlflow"
    root.mkdir(parents=True, exist_ok=True)
    path = root / "basic_auth.ini"
    text = (
        "[mlflow]\n"
        "default_permission = NO_PERMISSIONS\n"
        f"database_uri = sqlite:///{root / 'auth.db'}\n"
        f"admin_username = {MLFLOW_ADMIN}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        "grant_default_workspace_access = false\n"
        # One worker: a password or admin change through the API takes effect at once; the
        # cache spares the PBKDF2 check (~0.3 s) on every registry call and artifact download.
        "auth_cache_ttl_seconds = 60\n"
    )
    if not path.exists() or path.read_text() != text:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
    return path


def mlflow_server_auth_env(settings: Settings) -> dict[str, str]:
    """What ``mlflow server --app-name basic-auth`` needs: its config, the admin password (read
    on the first start only, when it creates the admin) and the Flask secret key."""
    admin = embedded_mlflow_credentials(settings, "admin")
    if admin is None:
        return {}
    return {
        "MLFLOW_AUTH_CONFIG_PATH": str(mlflow_auth_config(settings)),
        "MLFLOW_AUTH_ADMIN_USERNAME": admin[0],
        "MLFLOW_AUTH_ADMIN_PASSWORD": admin[1],
        "MLFLOW_FLASK_SERVER_SECRET_KEY": embedded_secret(settings, "mlflow-flask.key"),
    }


def mlflow_service(settings: Settings) -> Service:
    root = settings.state / "mlflow"
    root.mkdir(parents=True, exist_ok=True)
    m = settings.mlflow
    auth_env = mlflow_server_auth_env(settings)
    env = {**child_environ(settings), "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **auth_env}
    for key in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        env.pop(key, None)  # the server is nobody's client
    app = ["--app-name", "basic-auth"] if auth_env else []
    return Service(
        name="mlflow",
        port=m.port,
        health_url=f"http://{m.host}:{m.port}/health",
        # `mlflow server`, with the web server exec'd in place of the launcher (one process)
        command=[
            sys.executable,
            "-m",
            "driftloop.embedded.mlflow_server",
            *app,
            "--workers",
            "1",
            "--backend-store-uri",
            f"sqlite:///{root / 'mlflow.db'}",
            "--artifacts-destination",
            str(root / "artifacts"),
            "--host",
            m.host,
            "--port",
            str(m.port),
        ],
        env=env,
        port_setting="DRIFTLOOP_MLFLOW__PORT",
    )


def prefect_server_env(settings: Settings) -> dict[str, str]:
    home = settings.state / "prefect"
    home.mkdir(parents=True, exist_ok=True)
    return {
        **child_environ(settings),
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": settings.prefect.url,
        "PREFECT_SERVER_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{home / 'prefect.db'}",
        "PREFECT_SERVER_UI_API_URL": settings.prefect.url,
        # quiet console (the server's log file), not quieter loggers
        **prefect_logging_env(),
        **prefect_server_auth_env(settings),
    }


def prefect_server_auth_env(settings: Settings) -> dict[str, str]:
    """The embedded Prefect server's API auth string (every API call but the health check
    needs it; the UI asks for it). Empty when auth is off or the server is external."""
    p = settings.prefect
    if not (p.embedded and p.auth.enabled):
        return {}
    auth = prefect_auth_string(settings)
    return {"PREFECT_SERVER_API_AUTH_STRING": auth} if auth else {}


def prefect_service(settings: Settings) -> Service:
    p = settings.prefect
    return Service(
        name="prefect",
        port=p.port,
        health_url=f"http://{p.host}:{p.port}/api/health",
        command=[
            venv_bin("prefect"),
            "server",
            "start",
            "--host",
            p.host,
            "--port",
            str(p.port),
            "--no-background",
        ],
        env=prefect_server_env(settings),
        port_setting="DRIFTLOOP_PREFECT__PORT",
    )


def worker_service(settings: Settings) -> Service:
    env = service_env(settings)
    env["PREFECT_HOME"] = str(settings.state / "prefect")
    return Service(
        name="worker",
        port=None,
        health_url=None,
        command=[
            venv_bin("prefect"),
            "worker",
            "start",
            "--pool",
            settings.prefect.work_pool,
            "--type",
            settings.prefect.work_pool_type,
        ],
        env=env,
    )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still "exists": look at its state.
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    return True


def _read_pid(path: Path) -> int | None:
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _pid_alive(pid) else None


def _healthy(url: str | None, timeout: float = 2.0) -> bool:
    if url is None:
        return True
    try:
        return httpx.get(url, timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def free_port() -> int:
    """A port the OS reports free on 127.0.0.1 (for tests and ad-hoc servers)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def status_of(service: Service, settings: Settings) -> ServiceStatus:
    run, logs = run_dirs(settings)
    pid = _read_pid(run / f"{service.name}.pid")
    running = pid is not None
    healthy = running and _healthy(service.health_url)
    url = service.health_url.rsplit("/", 1)[0] if service.health_url else None
    if service.name == "prefect" and url:
        url = url.removesuffix("/api")
    return ServiceStatus(service.name, pid, running, healthy, url, logs / f"{service.name}.log")


def start_service(
    service: Service,
    settings: Settings,
    wait: Callable[[str], None] | None = None,
    block: bool = True,
) -> ServiceStatus:
    """Start ``service`` unless ours is already running; wait until healthy. ``block=False``
    returns once the process is launched: :func:`await_service` waits for it later, so several
    services can spend their start-up (mostly imports) at the same time."""
    run, logs = run_dirs(settings)
    current = status_of(service, settings)
    if current.running:
        if current.healthy or service.health_url is None:
            logger.info("%s already running (pid %s): reused", service.name, current.pid)
            return current
        if not block:
            return current
        # Our process is alive but not answering yet (or hung): give it the startup window.
        _wait_healthy(service, current.pid, logs / f"{service.name}.log")
        return status_of(service, settings)
    if service.port is not None and port_in_use("127.0.0.1", service.port):
        raise ServiceUnavailableError(
            f"port {service.port} is held by another process, not driftloop's {service.name}: "
            f"stop it or choose another port with {service.port_setting}=..."
        )
    log_path = logs / f"{service.name}.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            service.command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=service.env,
            cwd=str(project_root()),
            start_new_session=True,
        )
    (run / f"{service.name}.pid").write_text(str(proc.pid))
    if wait:
        wait(f"waiting for {service.name} (pid {proc.pid})")
    if not block:
        return status_of(service, settings)
    _wait_healthy(service, proc.pid, log_path)
    return status_of(service, settings)


def await_service(service: Service, settings: Settings) -> ServiceStatus:
    """Wait until a service launched with ``start_service(..., block=False)`` is healthy (an
    error naming its log when it exits or does not answer within its start-up window)."""
    _, logs = run_dirs(settings)
    current = status_of(service, settings)
    if current.healthy:
        return current
    if current.pid is None:
        raise ServiceUnavailableError(
            f"{service.name} is not running; see {logs / f'{service.name}.log'}"
        )
    _wait_healthy(service, current.pid, logs / f"{service.name}.log")
    return status_of(service, settings)


def _wait_healthy(service: Service, pid: int | None, log_path: Path) -> None:
    if service.health_url is None:
        time.sleep(1.0)
        if pid is not None and not _pid_alive(pid):
            raise ServiceUnavailableError(f"{service.name} exited at start; see {log_path}")
        return
    deadline = time.monotonic() + service.startup_timeout_s
    while time.monotonic() < deadline:
        if _healthy(service.health_url, timeout=1.0):
            return
        if pid is not None and not _pid_alive(pid):
            tail = log_path.read_text(errors="replace").strip().splitlines()[-1:] or [""]
            raise ServiceUnavailableError(
                f"{service.name} exited before it was healthy ({tail[0][:200]}); see {log_path}"
            )
        time.sleep(0.3)
    raise ServiceUnavailableError(
        f"{service.name} did not answer {service.health_url} within "
        f"{service.startup_timeout_s:.0f} s; see {log_path}"
    )


def stop_service(service: Service, settings: Settings, timeout_s: float = 20.0) -> bool:
    """Terminate the service's process group; True when something was stopped."""
    run, _ = run_dirs(settings)
    pid_file = run / f"{service.name}.pid"
    pid = _read_pid(pid_file)
    pid_file.unlink(missing_ok=True)
    if pid is None:
        return False
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and _group_alive(pid):
        time.sleep(0.2)
    if _group_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    return True


def _group_alive(pgid: int) -> bool:
    """Any non-zombie process left in the process group ``pgid``?"""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False
