"""Register the Prefect deployments declared in ``prefect.yaml`` (and the automations of the
closed loop) against the configured Prefect server, creating the work pool when missing."""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

from driftloop.embedded.services import service_env, venv_bin
from driftloop.errors import ServiceUnavailableError
from driftloop.loop.automations import ensure_automations
from driftloop.settings import Settings, get_settings, prefect_auth_string, project_root

logger = logging.getLogger(__name__)


def _run_prefect(
    args: list[str], settings: Settings, timeout: float
) -> subprocess.CompletedProcess[str]:
    env = service_env(settings)
    env["DRIFTLOOP_PREFECT__WORK_POOL"] = settings.prefect.work_pool
    env["PREFECT_HOME"] = str(settings.state / "prefect")
    return subprocess.run(
        [venv_bin("prefect"), "--no-prompt", *args],
        cwd=project_root(),
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _prefect(args: list[str], settings: Settings, timeout: float = 600) -> str:
    proc = _run_prefect(args, settings, timeout)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise ServiceUnavailableError(f"prefect {' '.join(args[:2])} failed: {' | '.join(tail)}")
    return proc.stdout


def ensure_work_pool(settings: Settings) -> None:
    """Create the work pool unless it exists.

    Asks for the pool by name (``work-pool inspect`` exits non-zero when it is missing): the
    table of ``work-pool ls`` truncates long names, so searching it misses existing pools."""
    if (
        _run_prefect(["work-pool", "inspect", settings.prefect.work_pool], settings, 120).returncode
        == 0
    ):
        return
    _prefect(
        [
            "work-pool",
            "create",
            settings.prefect.work_pool,
            "--type",
            settings.prefect.work_pool_type,
        ],
        settings,
        timeout=120,
    )


def deploy_all(settings: Settings | None = None) -> None:
    """Create the work pool, every deployment in prefect.yaml, and the automations."""
    settings = settings or get_settings()
    ensure_work_pool(settings)
    _prefect(["deploy", "--all"], settings)
    logger.info("deployments registered on %s", settings.prefect.url)
    with _prefect_auth(settings):
        for done in ensure_automations(settings):
            logger.info("automations: %s", done)


@contextmanager
def _prefect_auth(settings: Settings) -> Iterator[None]:
    """This process's Prefect client sends the API auth string (when there is one)."""
    auth = prefect_auth_string(settings)
    if not auth:
        yield
        return
    from prefect.settings import PREFECT_API_AUTH_STRING, temporary_settings

    with temporary_settings(updates={PREFECT_API_AUTH_STRING: auth}):
        yield
