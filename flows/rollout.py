"""Prefect flow ``rollout``: canary the challenger, watch live numbers, promote or roll back.

A thin wrapper over :mod:`driftloop.loop.rollout` (tested without Prefect): the challenger gets the
canary weight, the flow waits for ``min_requests`` challenger requests or ``max_minutes``
(numbers from the inference log, so every serving replica counts), compares challenger with
champion and acts; the decision, reasons and numbers go to the promotion audit log.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from driftloop.loop.rollout import CanaryVerdict, act, start, wait_for_evidence
from driftloop.monitoring.canary import VariantStats


@task(name="start-canary", retries=2, retry_delay_seconds=5)
def start_task(weight: int | None) -> dict[str, Any]:
    """Set the challenger's weight in the registry (409 without a challenger)."""
    return start(weight, actor="flow:rollout")


@task(name="wait-for-evidence")
def wait_task(
    min_requests: int | None, max_minutes: float | None, poll_s: float | None
) -> dict[str, Any]:
    """Poll the inference log until there is enough challenger traffic (or time is up)."""
    return wait_for_evidence(None, min_requests, max_minutes, poll_s).to_dict()


@task(name="promote-or-rollback", retries=2, retry_delay_seconds=5)
def act_task(verdict: dict[str, Any]) -> dict[str, Any]:
    """Apply the verdict to the registry and append it to the audit log."""
    v = CanaryVerdict(
        decision=verdict["decision"],
        reasons=verdict["reasons"],
        champion=VariantStats(**verdict["champion"]),
        challenger=VariantStats(**verdict["challenger"]),
        started=verdict["started"],
        metrics=verdict["metrics"],
    )
    return act(v, actor="flow:rollout")


@flow(name="rollout", log_prints=False)
def rollout(
    weight: int | None = None,
    min_requests: int | None = None,
    max_minutes: float | None = None,
    poll_s: float | None = None,
) -> dict[str, Any]:
    """Canary the challenger at ``weight`` % (default settings.rollout.canary_weight), judge it
    after ``min_requests`` challenger requests or ``max_minutes``, then promote or roll back."""
    start_task(weight)
    verdict = wait_task(min_requests, max_minutes, poll_s)
    record = act_task(verdict)
    get_run_logger().info("rollout: %s (%s)", verdict["decision"], "; ".join(verdict["reasons"]))
    create_markdown_artifact(
        key="rollout-decision",
        markdown=(
            f"**{verdict['decision']}** version {record['from_version']} -> "
            f"{record['to_version']}\n\n" + "\n".join(f"- {r}" for r in verdict["reasons"])
        ),
        description="rollout",
    )
    return record
