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

from driftloop.loop.rollout import abandon, conclude, start, wait_for_decision
from driftloop.monitoring.noninferiority import CanaryDecision
from driftloop.registry.client import registry_snapshot
from driftloop.registry.description import TAG_ROLLOUT_PREFECT_RUN, describe
from driftloop.settings import get_settings
from flows.names import rollout_run_name
from flows.train import prefect_run_url


@task(name="start-canary", retries=2, retry_delay_seconds=5)
def start_task(weight: int | None) -> dict[str, Any]:
    """Set the challenger's weight in the registry (409 without a challenger); the challenger's
    description then links to this flow run."""
    audit = start(weight, actor="flow:rollout")
    url, version = prefect_run_url(), audit.get("to_version")
    if url and version:
        try:
            describe(str(version), get_settings(), {TAG_ROLLOUT_PREFECT_RUN: url})
        except Exception as exc:  # a missing link must not stop the canary
            get_run_logger().warning("could not link version %s to this run: %s", version, exc)
    return audit


@task(name="look-until-decided", cache_policy=NONE)
def wait_task() -> tuple[CanaryDecision, int, str | None]:
    """Look at the evidence every ``look_every`` routed requests until a look concludes; a
    failure rolls the challenger back (it must not stay on a weight nobody watches)."""
    logger = get_run_logger()
    settings = get_settings()
    snap = registry_snapshot(settings)

    def on_look(look: int, decision: CanaryDecision) -> None:
        logger.info(
            "look %d (%d routed requests): %s", look, decision.evidence.routed, decision.decision
        )

    try:
        decision, looks = wait_for_decision(settings, on_look, snap=snap)
    except BaseException as exc:
        abandon(exc, "flow:rollout", snap, settings)
        raise
    return decision, looks, snap.rollout_started


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
        + _error_rate_line(decision),
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
    if decision.kpi:
        kpi = ", ".join(f"{k} {v}" for k, v in decision.kpi.items())
        lines += ["", f"KPIs of the hard guards (settings.kpi): {kpi}"]
    return "\n".join(lines)


def _error_rate_line(decision: CanaryDecision) -> str:
    found = decision.decision == "promote" or any(m.status == "inferior" for m in decision.metrics)
    if not found:
        return "Not a finding of the test (budget default, hard guard or sample-ratio halt)."
    return (
        f"Error rate of this decision <= {decision.alpha:g} (confidence sequences at "
        f"{decision.metric_alpha:.4g} per metric, valid at every look; asymptotic)."
    )


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


@flow(name="rollout", flow_run_name=rollout_run_name, log_prints=False)
def rollout(weight: int | None = None) -> dict[str, Any]:
    """Canary the challenger at ``weight`` % (default settings.rollout.canary_weight), look at
    the evidence until it concludes or the budget is spent, then promote or roll back."""
    start_task(weight)
    decision, looks, started = wait_task()
    # not a retried task: a retry after a partial registry write would audit a wrong change
    record, audit = conclude(decision, looks, "flow:rollout", get_settings(), started)
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
