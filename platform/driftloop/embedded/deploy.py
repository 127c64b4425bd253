"""Register the Prefect deployments declared in ``prefect.yaml`` (and the automations of the
closed loop) against the configured Prefect server, creating the work pool when missing."""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

from driftloop.embedded.services import service_env, venv_bin
from driftloop.errors import ServiceUnavailableError
from driftloop.loop.automations import ensure_automations, prefect_client
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

    Asks the API for the pool by name, in this process (a ``prefect work-pool`` subprocess costs
    a Prefect import, seconds); a new pool gets its worker type's default job template, as
    ``prefect work-pool create`` gives it. A type this process's Prefect does not know (one
    only the collections registry lists) is created through the CLI."""
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound
    from prefect.workers.base import BaseWorker

    name, kind = settings.prefect.work_pool, settings.prefect.work_pool_type
    with _prefect_auth(settings), prefect_client(settings) as client:
        try:
            client.read_work_pool(name)
            return
        except ObjectNotFound:
            pass
        worker = BaseWorker.get_worker_class_from_type(kind)
        if worker is not None:
            template = worker.get_default_base_job_template()
            client.create_work_pool(
                WorkPoolCreate(name=name, type=kind, base_job_template=template)
            )
            logger.info("work pool %s (%s) created", name, kind)
            return
    _prefect(["work-pool", "create", name, "--type", kind], settings, timeout=120)


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
