"""``driftloop batch-score``: score a month (or a parquet file of flights) with the champion or a
given version, historical features, lineage ids; parquet out, an MLflow run recorded."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def batch_score_cmd(
    month: Annotated[
        str | None,
        typer.Option("--month", help="Ingested month to score, YYYY-MM (or --input)."),
    ] = None,
    version: Annotated[
        str | None,
        typer.Option("--version", help="Model version to score with (default: the champion)."),
    ] = None,
    input_path: Annotated[
        Path | None,
        typer.Option(
            "--input",
            help="Parquet file of flights instead of a month: flight_id, carrier, origin, dest, "
            "tailnum, scheduled_departure, distance (is_late optional).",
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Output file (a name ending in .parquet) or folder for "
            "<input>-v<version>.parquet (default folder: settings.batch.output_dir, else "
            "{state}/batch).",
        ),
    ] = None,
    no_mlflow_run: Annotated[
        bool, typer.Option("--no-mlflow-run", help="Do not record the run in MLflow.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Score every flight of a month (or of a parquet file) with point-in-time features from
    the Feast offline store, the way training sees them, using the champion (or --version) at
    its served decision threshold. Writes one parquet row per flight with its probability,
    decision, outcome where known and the model's lineage id, and records the run in MLflow
    (version, input, rows, rows/s and the predictions)."""
    from driftloop.loop.batch import batch_score, summary_json  # lazy: start-up cost

    result = batch_score(
        month=month,
        input_path=input_path,
        version=version,
        out=out,
        log_to_mlflow=not no_mlflow_run,
    )
    typer.echo(summary_json(result) if as_json else result.line())


def register(app: typer.Typer) -> None:
    """Add ``driftloop batch-score`` to ``app``."""
    app.command("batch-score")(batch_score_cmd)
