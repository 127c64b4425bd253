"""``driftloop housekeeping``: retention of captures, feedback, reports, quarantine, DVC cache."""

from __future__ import annotations

import json
from typing import Annotated

import typer


def housekeeping_cmd(
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="Only list what would be removed (default: retention.dry_run)."
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole report as JSON.")] = (
        False
    ),
) -> None:
    """Remove captures, feedback, drift reports, refused ingests' rows and local DVC cache
    objects older than settings.retention allows; whatever a registered model version still
    references is kept and listed. Needs MLflow (to know the references): removes nothing
    without it."""
    from driftloop.loop.housekeeping import run_housekeeping  # lazy: start-up cost

    report = run_housekeeping(dry_run=True if dry_run else None)
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2, default=str))
        return
    verb = "would remove" if report.dry_run else "removed"
    typer.echo(f"{'kind':<11} {'older than':<26} {verb:>12} {'bytes':>12} {'kept':>5}")
    for kind, t in report.totals().items():
        typer.echo(
            f"{kind:<11} {report.cutoffs[kind]:<26} {t['removed']:>12} {t['bytes']:>12} "
            f"{t['kept']:>5}"
        )
    for item in report.kept:
        typer.echo(f"kept     {item.path}: {item.why}")
    for item in report.removed:
        typer.echo(f"{'would rm' if report.dry_run else 'removed '} {item.path} ({item.bytes} B)")
    for error in report.errors:
        typer.echo(f"error: {error}", err=True)


def register(app: typer.Typer) -> None:
    """Add ``driftloop housekeeping`` to ``app``."""
    app.command("housekeeping")(housekeeping_cmd)
