"""Prefect flow ``rollout``: canary the challenger, look at the evidence as it arrives, promote,
roll back or keep looking.

A thin wrapper over :mod:`driftloop.loop.rollout` (tested without Prefect): the challenger gets the
canary weight; every ``look_every`` routed requests the evidence (inference log, so every serving
replica counts) is judged with always-valid confidence sequences
(:mod:`driftloop.monitoring.noninferiority`); the first look that concludes, or the budget, ends
it. The decision is stored as a decision record (``driftloop decisions show <id>``), applied to
the registry (audited), and shown as a table artifact of every metric's interval.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE

from driftloop.loop.decisions import record_rollout
from driftloop.loop.rollout import act, start, wait_for_decision
from driftloop.monitoring.noninferiority import CanaryDecision


@task(name="start-canary", retries=2, retry_delay_seconds=5)
def start_task(weight: int | None) -> dict[str, Any]:
    """Set the challenger's weight in the registry (409 without a challenger)."""
    return start(weight, actor="flow:rollout")


@task(name="look-until-decided", cache_policy=NONE)
def wait_task() -> tuple[CanaryDecision, int]:
    """Look at the evidence every ``look_every`` routed requests until a look concludes."""
    logger = get_run_logger()

    def on_look(look: int, decision: CanaryDecision) -> None:
        logger.info(
            "look %d (%d routed requests): %s", look, decision.evidence.routed, decision.decision
        )

    return wait_for_decision(None, on_look)


@task(name="promote-or-rollback", retries=2, retry_delay_seconds=5, cache_policy=NONE)
def act_task(decision: CanaryDecision, record_id: str) -> dict[str, Any]:
    """Apply the decision to the registry and append it to the audit log."""
    return act(decision, actor="flow:rollout", record_id=record_id)


def markdown(decision: CanaryDecision, record_id: str, audit: dict[str, Any]) -> str:
    """The rollout artifact: decision, reasons, and every metric's interval and margin."""
    ev = decision.evidence
    lines = [
        f"## Rollout: **{decision.decision}** (version {audit.get('from_version')} -> "
        f"{audit.get('to_version')})",
        "",
        f"Decision record `{record_id}` (`driftloop decisions show {record_id}`). "
        f"{ev.routed} routed requests ({ev.treated} to the challenger at weight {ev.weight} %, "
        f"{ev.mode} mode); {ev.challenger.labeled} / {ev.champion.labeled} labelled rows. "
        f"Error rate of this decision <= {decision.alpha:g} (confidence sequences at "
        f"{decision.metric_alpha:.4g} per metric, valid at every look).",
        "",
        *(f"- {r}" for r in decision.reasons),
        "",
        "| metric | comparison | champion | challenger | difference ± half-width | margin "
        "| status |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for m in decision.metrics:
        b = m.bounds
        diff = b.text(4) if b is not None else "-"
        lines.append(
            f"| {m.metric} | {m.comparison} | {_num(m.champion)} | {_num(m.challenger)} | {diff} "
            f"| {m.margin:+.4f} | {m.status} |"
        )
    lines += ["", f"Sample ratio: {decision.srm.text()}"]
    return "\n".join(lines)


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


@flow(name="rollout", log_prints=False)
def rollout(weight: int | None = None) -> dict[str, Any]:
    """Canary the challenger at ``weight`` % (default settings.rollout.canary_weight), look at
    the evidence until it concludes or the budget is spent, then promote or roll back."""
    start_task(weight)
    decision, looks = wait_task()
    record = record_rollout(decision, looks)
    audit = act_task(decision, record["id"])
    get_run_logger().info(
        "rollout: %s after %d looks (%s): %s",
        decision.decision,
        looks,
        record["id"],
        decision.reason,
    )
    create_markdown_artifact(
        key="rollout-decision",
        markdown=markdown(decision, record["id"], audit),
        description="rollout",
    )
    return {**audit, "decision": decision.decision, "decision_id": record["id"], "looks": looks}
