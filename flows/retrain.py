"""Prefect flow ``retrain``: claim the window (guards) -> ingest -> features -> train + gate ->
canary rollout -> promote or roll back. Started by the drift automation (window from the event),
by the weekly schedule (no window: the newest months) or by hand.

Each step is another area's function or flow: :func:`flows.ingest.ingest` and
:func:`flows.features.features`, :func:`flows.train.train` (fit, then the evaluation gate) and
:func:`flows.rollout.rollout` run as subflows, so the Prefect UI shows retrain -> ingest,
features, train, rollout. The guards and the ledger are
:mod:`driftloop.loop.ledger`. A model that fails the gate leaves serving untouched; the outcome (new
champion, or the reason it is not one) goes to the ledger, the flow result and an artifact.
The loop's cost (CPU seconds of this flow run and the children it waited for, wall seconds)
goes with it, and onto the new version's training run
(:func:`driftloop.loop.cost_report.record_loop_cost`).
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE

from driftloop.cost import Meter
from driftloop.loop.cost_report import record_loop_cost
from driftloop.loop.ledger import finish_retrain
from driftloop.loop.trigger import claim_window, default_retrain_window
from driftloop.registry.client import CHAMPION, get_alias
from flows.features import features as features_flow
from flows.ingest import ingest as ingest_flow
from flows.names import rename_run, retrain_name, retrain_run_name
from flows.rollout import rollout as rollout_flow
from flows.train import train as train_flow


@task(name="claim-window", cache_policy=NONE)
def claim_task(
    start_month: str, end_month: str, reason: str, source: str, force: bool
) -> tuple[dict[str, str], Any, Any]:
    """Clamp the window to data that exists, then claim it (in this order: a window that
    cannot be trained on never takes the cooldown and budget)."""
    return claim_window(start_month, end_month, reason=reason, source=source, force=force)


def _artifact(outcome: dict[str, Any]) -> str:
    lines = [f"## Retrain {outcome.get('window')}: **{outcome.get('status')}**", ""]
    for key in (
        "reason",
        "guard",
        "version",
        "gate",
        "gate_reason",
        "holdout_auc",
        "rollout",
        "rollout_reasons",
        "champion",
        "cost",
        "error",
    ):
        if outcome.get(key) not in (None, "", []):
            lines.append(f"- **{key}**: {outcome[key]}")
    return "\n".join(lines)


@flow(name="retrain", flow_run_name=retrain_run_name, log_prints=False)
def retrain(
    start_month: str | None = None,
    end_month: str | None = None,
    reason: str = "",
    source: str = "manual",
    force: bool = False,
    rollout: bool = True,
) -> dict[str, Any]:
    """Retrain on ``start_month..end_month`` (YYYY-MM; evaluated on the month after). Without a
    window, the newest months are used. ``force`` skips the cooldown/budget/de-dup guards;
    ``rollout=False`` stops after the gate (the challenger keeps weight 0)."""
    logger = get_run_logger()
    meter = Meter().start()
    asked = (start_month, end_month)  # the run's name says these
    if not start_month or not end_month:
        window = default_retrain_window()
        start_month, end_month = window["start_month"], window["end_month"]
    # Malformed, reversed or data-less windows fail here, before any claim.
    window, record, guard = claim_task(start_month, end_month, reason, source, force)
    if (window["start_month"], window["end_month"]) != asked:  # defaulted or clamped
        rename_run(
            retrain_name(window["start_month"], window["end_month"], source, reason, rollout)
        )
    start_month, end_month = window["start_month"], window["end_month"]
    holdout = window["holdout_month"]
    outcome: dict[str, Any] = {
        "id": record.id,
        "window": f"{start_month}..{end_month}",
        "holdout_month": holdout,
        "reason": reason,
        "source": source,
    }
    if not guard.allowed:
        outcome.update(status="skipped", guard=guard.reason)
        logger.info("retrain skipped: %s", guard.reason)
        create_markdown_artifact(key="retrain-outcome", markdown=_artifact(outcome))
        return outcome
    try:
        ingest_flow(start_month=start_month, end_month=holdout)
        features_flow()
        summary = train_flow(start_month=start_month, end_month=end_month)
        trained = {
            "version": summary["version"],
            "run_id": summary["run_id"],
            "gate": summary["gate"],
            "gate_reason": summary["reason"],
            "compared_with": summary["compared_with"],
            "holdout_auc": summary.get("metrics", {}).get("model", {}).get("roc_auc"),
        }
        outcome.update(trained)
        if trained["gate"] == "challenger" and rollout:
            audit = rollout_flow()
            outcome.update(
                rollout=audit.get("action"),
                rollout_reasons=audit.get("reason"),
                rollout_decision=audit.get("decision_id"),
                rollout_outcome=audit.get("decision"),
            )
        elif trained["gate"] == "challenger":
            outcome.update(rollout="not started")
        elif trained["gate"] == "champion":
            outcome.update(rollout="none (first champion)")
        else:
            outcome.update(rollout="none (rejected by the gate; serving untouched)")
        champion = get_alias(CHAMPION)
        outcome.update(status="finished", champion=champion.version if champion else None)
        outcome.update(cost=record_loop_cost(outcome, meter.read()))
        finish_retrain(record, outcome)
    except BaseException as exc:
        outcome.update(status="failed", error=f"{type(exc).__name__}: {exc}"[:1000])
        if "cost" not in outcome:  # what the loop spent before it failed
            outcome.update(cost=record_loop_cost(outcome, meter.read()))
        finish_retrain(record, outcome, failed=True)
        create_markdown_artifact(key="retrain-outcome", markdown=_artifact(outcome))
        raise
    create_markdown_artifact(key="retrain-outcome", markdown=_artifact(outcome))
    logger.info(
        "retrain %s: version %s %s, rollout %s, champion %s",
        outcome["window"],
        outcome.get("version"),
        outcome.get("gate"),
        outcome.get("rollout"),
        outcome.get("champion"),
    )
    return outcome
