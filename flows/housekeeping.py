"""Prefect flow ``housekeeping``: apply the retention settings once (captures, feedback, drift
reports, refused ingests' rows, the local DVC cache), keeping whatever a registered version
still references. Scheduled daily by the ``housekeeping`` deployment. The work is
:func:`driftloop.loop.housekeeping.run_housekeeping`; this wrapper adds the report as a
markdown artifact on the flow run.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE

from driftloop.loop.housekeeping import HousekeepingReport, run_housekeeping
from flows.names import housekeeping_run_name


@task(name="sweep", cache_policy=NONE)
def sweep_task(dry_run: bool | None) -> HousekeepingReport:
    """Find expired items, keep the referenced ones, remove the rest."""
    return run_housekeeping(dry_run=dry_run)


@flow(name="housekeeping", flow_run_name=housekeeping_run_name, log_prints=False)
def housekeeping(dry_run: bool | None = None) -> dict[str, Any]:
    """Remove what is older than ``settings.retention`` allows and no registered version
    references (``dry_run``: only report it; empty: ``retention.dry_run``)."""
    report = sweep_task(dry_run)
    create_markdown_artifact(
        markdown=report.markdown(), key="housekeeping", description="retention: removed and kept"
    )
    get_run_logger().info(
        "housekeeping%s: %d removed (%d bytes), %d kept as referenced, %d errors",
        " (dry run)" if report.dry_run else "",
        len(report.removed),
        report.bytes_removed,
        len(report.kept),
        len(report.errors),
    )
    return report.to_dict()
