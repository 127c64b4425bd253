"""Prefect flow ``batch-score``: score a month (or a parquet file of flights) with the champion or
a given version and historical (point-in-time) features; write the predictions with the model's
lineage id as parquet and record the run in MLflow. The work is
:func:`driftloop.loop.batch.batch_score`; this wrapper adds a markdown artifact to the flow run
and names the run by what it scores.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE

from driftloop.loop.batch import BatchResult, batch_score


@task(name="score", cache_policy=NONE)
def score_task(
    month: str | None, input_path: str | None, version: str | None, out: str | None
) -> BatchResult:
    """Read the flights, retrieve their features, score, write, log to MLflow."""
    return batch_score(month=month, input_path=input_path, version=version, out=out)


def _run_name() -> str:
    from prefect.runtime import flow_run

    params = flow_run.parameters
    what = params.get("month") or params.get("input_path") or "?"
    version = params.get("version")
    return f"batch-score {what} ({'v' + str(version) if version else 'champion'})"


def _markdown(result: BatchResult) -> str:
    rows = [
        ("model", f"{result.model} v{result.version}"),
        ("lineage id", f"`{result.lineage_id}`"),
        ("input", result.input),
        ("rows", f"{result.rows:,} ({result.labelled:,} with a known outcome)"),
        ("predicted late", f"{result.predicted_late:,}"),
        ("threshold", f"{result.threshold:.4g} ({result.threshold_source})"),
        ("rows/s", f"{result.rows_per_s:,.0f} end to end, {result.score_rows_per_s:,.0f} scoring"),
        ("output", f"`{result.output}`"),
        ("MLflow run", f"`{result.run_id}` (artifact `{result.artifact}`)"),
    ]
    return "\n".join(["| | |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)])


@flow(name="batch-score", flow_run_name=_run_name, log_prints=False)
def batch_score_flow(
    month: str | None = None,
    input_path: str | None = None,
    version: str | None = None,
    out: str | None = None,
) -> dict[str, Any]:
    """Score ``month`` (YYYY-MM, ingested) or the parquet file ``input_path`` with ``version``
    (empty: the champion); ``out``: output file or folder (empty: settings.batch.output_dir or
    {state}/batch)."""
    result = score_task(month, input_path, version, out)
    create_markdown_artifact(
        markdown=_markdown(result),
        key="batch-score",
        description=f"batch score of {result.input} by v{result.version}",
    )
    get_run_logger().info("%s", result.line())
    return result.to_dict()
