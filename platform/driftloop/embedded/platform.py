"""``driftloop up`` / ``down`` / ``status``: the embedded platform's services and deployments
together. ``start_all`` starts MLflow (basic auth; its users provisioned from the passwords in
``{state}/secrets``) and Prefect (API auth string), registers the deployments (and the loop's
automation) and starts the worker; ``stop_all`` stops everything, including processes started
beside them (the demo's inference API)."""

from __future__ import annotations

from collections.abc import Callable

from driftloop.embedded.deploy import deploy_all
from driftloop.embedded.services import (
    Service,
    ServiceStatus,
    await_service,
    mlflow_service,
    prefect_service,
    run_dirs,
    start_service,
    status_of,
    stop_service,
    worker_service,
)
from driftloop.registry.access import provision_embedded
from driftloop.settings import Settings, get_settings


def services(settings: Settings) -> list[Service]:
    out = [mlflow_service(settings), prefect_service(settings)]
    if settings.prefect.start_worker:
        out.append(worker_service(settings))
    return out


def start_all(
    settings: Settings | None = None,
    deploy: bool = True,
    progress: Callable[[str], None] | None = None,
    worker: bool = True,
) -> list[ServiceStatus]:
    """Start MLflow and Prefect, register the deployments, start the worker (``worker=False``:
    not yet; the demo starts it once its deployments are registered in the background)."""
    settings = settings or get_settings()
    # Both servers start at once: each spends its first seconds importing, on its own core.
    servers = [mlflow_service(settings), prefect_service(settings)]
    for server in servers:
        start_service(server, settings, progress, block=False)
    statuses = [await_service(servers[0], settings)]
    if settings.mlflow.auth.enabled:
        # Users and grants follow the passwords in {state}/secrets (idempotent).
        if progress:
            progress("provisioning MLflow users (flows, serving, rollout)")
        provision_embedded(settings)
    statuses.append(await_service(servers[1], settings))
    if deploy:
        if progress:
            progress("registering Prefect deployments")
        deploy_all(settings)
    if worker and settings.prefect.start_worker:
        statuses.append(start_service(worker_service(settings), settings, progress))
    return statuses


def stop_all(settings: Settings | None = None) -> list[str]:
    """Stop worker, Prefect and MLflow; returns the names of what was running."""
    settings = settings or get_settings()
    stopped = []
    core = [mlflow_service(settings), prefect_service(settings), worker_service(settings)]
    # Processes started beside the core ones (the demo's inference API) stop first.
    for service in [*_other_services(settings, core), *reversed(core)]:
        if stop_service(service, settings):
            stopped.append(service.name)
    return stopped


def _other_services(settings: Settings, core: list[Service]) -> list[Service]:
    """Services with a pid file in the state folder that are not MLflow, Prefect or the worker
    (``driftloop demo`` leaves ``serving`` running); enough of them to report and stop."""
    run, _ = run_dirs(settings)
    known = {s.name for s in core}
    return [
        Service(name=p.stem, port=None, health_url=None, command=[], env={})
        for p in sorted(run.glob("*.pid"))
        if p.stem not in known
    ]


def status_all(settings: Settings | None = None) -> list[ServiceStatus]:
    settings = settings or get_settings()
    core = [mlflow_service(settings), prefect_service(settings), worker_service(settings)]
    return [status_of(s, settings) for s in [*core, *_other_services(settings, core)]]
