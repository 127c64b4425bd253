"""Run the inference API as a child process (``python -m serving``) configured from a Settings
object: used by the benchmark, the tests and anything that needs a real server on 127.0.0.1."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import httpx

from driftloop.errors import ServiceUnavailableError
from driftloop.settings import Settings, child_environ, project_root


def serving_env(settings: Settings) -> dict[str, str]:
    """Environment that makes ``get_settings()`` in a child equal ``settings`` for what serving
    reads (state, MLflow, serving, features, and the KPIs its rollout status judges against).
    Serving tokens are passed as their
    ``sha256:HEX`` digests, never in plain text (plain ones inherited from this process's
    environment are overwritten)."""
    env = child_environ(settings)
    env["DRIFTLOOP_ENVIRONMENT"] = settings.environment
    env["DRIFTLOOP_STATE_DIR"] = str(settings.state)
    env["DRIFTLOOP_LOG_LEVEL"] = settings.log_level
    env["DRIFTLOOP_MLFLOW__TRACKING_URI"] = settings.mlflow.uri
    env["MLFLOW_TRACKING_URI"] = settings.mlflow.uri
    for section in ("mlflow", "serving", "features", "kpi"):
        data = getattr(settings, section).model_dump(mode="json", exclude={"auth", "tracking_uri"})
        for key, value in data.items():
            if value is None:
                continue
            text = json.dumps(value) if isinstance(value, list | dict) else str(value)
            env[f"DRIFTLOOP_{section.upper()}__{key.upper()}"] = text
    auth = settings.serving.auth
    if auth.enabled is not None:
        env["DRIFTLOOP_SERVING__AUTH__ENABLED"] = str(auth.enabled).lower()
    path = [str(project_root() / "platform"), str(project_root())]
    if env.get("PYTHONPATH"):
        path.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(path)
    return env


class ServerProcess:
    """``with ServerProcess(settings) as server: httpx.get(server.url + "/v2/health/live")``.
    Stops the whole process group on exit; the log is in ``{state}/logs/serving-<port>.log``."""

    def __init__(self, settings: Settings, startup_timeout_s: float = 90.0) -> None:
        self.settings = settings
        self.url = f"http://{settings.serving.host}:{settings.serving.port}"
        self.timeout = startup_timeout_s
        self.proc: subprocess.Popen[bytes] | None = None
        logs = settings.state / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        self.log: Path = logs / f"serving-{settings.serving.port}.log"

    def start(self, wait_ready: bool = True) -> ServerProcess:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "serving"],
                env=serving_env(self.settings),
                cwd=str(project_root()),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + self.timeout
        path = "/v2/health/ready" if wait_ready else "/v2/health/live"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = self.log.read_text(errors="replace").strip().splitlines()[-3:]
                raise ServiceUnavailableError(f"serving exited at start: {' | '.join(tail)}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + path, timeout=1.0).status_code == 200:
                    return self
            time.sleep(0.2)
        self.stop()
        raise ServiceUnavailableError(f"serving did not answer {path} within {self.timeout} s")

    def stop(self, timeout_s: float | None = None) -> None:
        """SIGTERM the process group (a graceful shutdown: requests in flight answered, capture
        flushed), SIGKILL after ``timeout_s`` (default: the time serving may take for that)."""
        if self.proc is None:
            return
        if timeout_s is None:
            timeout_s = self.settings.serving.capture_shutdown_s + 15.0
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
        self.proc = None

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
