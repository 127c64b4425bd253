"""Read-only listings of the registry and the tracking server for the platform's bookkeeping:
every version of the registered model (what housekeeping must not remove) and the training runs
that logged a cost (``driftloop cost``). Nothing here writes."""

from __future__ import annotations

from dataclasses import dataclass, field

from driftloop.registry.client import VersionInfo, get_client
from driftloop.settings import Settings, get_settings


def list_versions(settings: Settings | None = None, name: str | None = None) -> list[VersionInfo]:
    """Every registered version of the model (settings.mlflow.registered_model unless ``name``),
    oldest first, with its tags. ServiceUnavailableError when MLflow cannot be reached."""
    settings = settings or get_settings()
    name = name or settings.mlflow.registered_model
    client = get_client(settings)
    escaped = name.replace("'", "\\'")
    found: list[VersionInfo] = []
    token: str | None = None
    while True:
        page = client.search_model_versions(f"name = '{escaped}'", page_token=token)
        found.extend(
            VersionInfo(
                name=mv.name,
                version=str(mv.version),
                run_id=mv.run_id,
                source=mv.source or "",
                tags=dict(mv.tags or {}),
                aliases=tuple(mv.aliases or ()),
            )
            for mv in page
        )
        token = page.token
        if not token:
            break
    return sorted(found, key=lambda v: int(v.version))


@dataclass(frozen=True)
class RunCost:
    """One tracked run's cost metrics (``cost.*``) and what identifies it."""

    run_id: str
    run_name: str
    started_ms: int
    status: str
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


def runs_with_metric(
    metric: str, settings: Settings | None = None, limit: int = 50
) -> list[RunCost]:
    """The newest ``limit`` runs of driftloop's experiment that logged ``metric``, newest first,
    with their ``cost.*`` metrics and ``driftloop.*`` tags (an absent experiment: none)."""
    settings = settings or get_settings()
    client = get_client(settings)
    experiment = client.get_experiment_by_name(settings.mlflow.experiment)
    if experiment is None:
        return []
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"metrics.`{metric}` >= 0",
        max_results=limit,
        order_by=["attributes.start_time DESC"],
    )
    return [
        RunCost(
            run_id=run.info.run_id,
            run_name=run.info.run_name or "",
            started_ms=int(run.info.start_time or 0),
            status=str(run.info.status),
            metrics={k: float(v) for k, v in run.data.metrics.items() if k.startswith("cost.")},
            tags={k: v for k, v in run.data.tags.items() if k.startswith("driftloop.")},
        )
        for run in runs
    ]
