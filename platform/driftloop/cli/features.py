"""CLI commands of the features area: ``driftloop features apply|materialize|parity``."""

from __future__ import annotations

from typing import Annotated

import typer

from driftloop.cli.common import progress
from driftloop.errors import DataQualityError
from driftloop.settings import get_settings

features_app = typer.Typer(
    name="features",
    help="Feature store (Feast): apply definitions, materialize the online store, check parity.",
    no_args_is_help=True,
)

UNTIL_HELP = (
    "Materialize values stamped up to this time (ISO, naive = UTC), e.g. 2013-03-31T23:00. "
    "Default: the end of the latest ingested month."
)
REBUILD_HELP = "Rebuild the offline sources from the ingested partitions first."
SAMPLE_HELP = (
    "Entities sampled per feature view (0: all). Default: settings.features.parity_sample."
)


@features_app.command("apply")
def apply_command() -> None:
    """Register the feature repo's entities, sources, views and service (`feast apply`)."""
    settings = get_settings()
    with progress("feast apply", total=1) as bar:
        from driftloop.features.repo import apply  # lazy: start-up cost

        names = apply(settings)
        bar.update(bar.task_ids[0], advance=1)
    typer.echo(f"applied {len(names)} objects: {', '.join(names)}")


@features_app.command("materialize")
def materialize_command(
    until: Annotated[str | None, typer.Option("--until", help=UNTIL_HELP)] = None,
    rebuild: Annotated[bool, typer.Option("--rebuild/--no-rebuild", help=REBUILD_HELP)] = True,
) -> None:
    """Build the offline sources from ingested data, apply, and load the online store."""
    from driftloop.features.store import parse_until  # lazy: start-up cost

    settings = get_settings()
    end = parse_until(until, settings)  # bad --until or no ingested data: fail before work
    with progress("features", total=3) as bar:
        task_id = bar.task_ids[0]
        from driftloop.features.config import feature_store  # lazy: start-up cost
        from driftloop.features.repo import apply  # lazy: start-up cost
        from driftloop.features.store import build_sources, materialize  # lazy: start-up cost

        if rebuild:
            bar.update(task_id, description="building sources from partitions")
            build_sources(None, settings)
        bar.update(task_id, advance=1, description="feast apply")
        store = feature_store(settings)
        apply(settings, store)
        bar.update(task_id, advance=1, description=f"materializing up to {end.isoformat()}")
        result = materialize(end, settings, store)
        bar.update(task_id, advance=1, description="done")
    typer.echo(
        f"materialized {', '.join(result.views)} up to {result.until.isoformat()} "
        f"in {result.seconds:.1f} s"
    )


@features_app.command("parity")
def parity_command(
    sample: Annotated[int | None, typer.Option("--sample", help=SAMPLE_HELP)] = None,
) -> None:
    """Compare online values with offline (historical) values; exit 1 on any mismatch."""
    settings = get_settings()
    with progress("parity", total=1) as bar:
        from driftloop.features.parity_check import parity  # lazy: start-up cost

        report = parity(settings, sample)
        bar.update(bar.task_ids[0], advance=1)
    typer.echo(report.summary())
    if not report.ok:
        # A DriftloopError: main() prints it as one line and exits 1.
        raise DataQualityError(
            f"feature parity failed: {len(report.mismatches)} online values differ from offline"
        )


def register(app: typer.Typer) -> None:
    """Add this area's commands to the main app."""
    app.add_typer(features_app, name="features")
