"""Prefect flow ``features``: ingested partitions -> offline sources -> feast apply -> materialize.

A thin wrapper over :mod:`driftloop.features`; the work is tested without Prefect.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from driftloop.features.repo import apply
from driftloop.features.store import build_sources, materialize, parse_until
from flows.names import features_run_name


@task(name="build-feature-sources")
def build_sources_task(months: list[str] | None) -> dict[str, str]:
    """Compute the feature tables from the partitions and write the parquet sources."""
    return {table: str(path) for table, path in build_sources(months).items()}


@task(name="feast-apply")
def apply_task() -> list[str]:
    """Register the repo's objects (``feast apply``)."""
    return apply()


@task(name="materialize-online-store")
def materialize_task(until: str | None) -> dict[str, Any]:
    """Load the online store up to ``until`` (default: end of the latest ingested month)."""
    result = materialize(until)
    return {"until": result.until.isoformat(), "seconds": result.seconds, "views": result.views}


@flow(name="features", flow_run_name=features_run_name, log_prints=False)
def features(until: str | None = None, months: list[str] | None = None) -> dict[str, Any]:
    """Build the feature sources from ``months`` (default: all ingested), apply the feature repo
    and materialize the online store up to ``until`` (ISO time, naive = UTC)."""
    end = parse_until(until).isoformat()  # bad value or no data: fail before any work
    sources = build_sources_task(months)
    applied = apply_task()
    materialized = materialize_task(end)
    summary = {"sources": sources, "applied": applied, **materialized}
    get_run_logger().info("features materialized up to %s", materialized["until"])
    create_markdown_artifact(
        key="features-summary",
        markdown=(
            f"Online store materialized up to `{materialized['until']}` in "
            f"{materialized['seconds']:.1f} s; views: {', '.join(materialized['views'])}"
        ),
        description="features",
    )
    return summary
