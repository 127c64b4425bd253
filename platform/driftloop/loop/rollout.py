"""Automatic canary analysis: put the challenger on a weight, look at the evidence as it arrives,
promote, roll back, or keep looking.

The statistics are :mod:`driftloop.monitoring.noninferiority` (always-valid confidence sequences
per metric, a sample-ratio check, three outcomes) on the evidence of
:mod:`driftloop.monitoring.canary` (routed requests from the inference log, so every serving
replica counts). Looks happen at fixed evidence sizes, every ``look_every`` routed requests, each
on exactly the first ``k * look_every`` requests that are at least ``label_wait_s`` old: the same
traffic reaches the same decision at the same look, whenever the poll timer fires. The rollout
ends at the first look that concludes, or at the budget (``max_requests`` routed requests or
``max_minutes``), where an open question becomes ``on_budget`` (roll back). The hard guards
judge the challenger against the KPIs of ``settings.kpi`` (maximum error rate, p99 latency
budget). The final decision is stored as a decision record (:mod:`driftloop.loop.decisions`)
and its numbers, the KPI values included, go into the registry's audit log
(:mod:`driftloop.registry.promotion`). A promoted champion that disappoints later is set back
with ``driftloop rollout restore`` (:func:`driftloop.registry.promotion.restore`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from driftloop.data.capture import CaptureCursor
from driftloop.errors import ConflictError
from driftloop.loop.decisions import new_decision_id, record_rollout
from driftloop.loop.notifications import emit_rollback
from driftloop.monitoring.canary import available_requests, read_rollout_frame
from driftloop.monitoring.noninferiority import (
    EXTEND,
    HALT,
    PROMOTE,
    ROLLBACK,
    CanaryDecision,
    current_decision,
    look,
)
from driftloop.registry.client import RegistrySnapshot, registry_snapshot
from driftloop.registry.promotion import promote, rollback, start_rollout
from driftloop.settings import Settings, get_settings

logger = logging.getLogger(__name__)

__all__ = [
    "EXTEND",
    "HALT",
    "PROMOTE",
    "ROLLBACK",
    "abandon",
    "act",
    "conclude",
    "judge_canary",
    "reset_stale_rollout",
    "run_rollout",
    "stale_rollout",
    "start",
    "wait_for_decision",
]


def start(
    weight: int | None = None, actor: str = "rollout", settings: Settings | None = None
) -> dict[str, Any]:
    """Put the challenger on ``weight`` percent (default settings.rollout.canary_weight) and
    stamp the start in the registry. 409 without a challenger."""
    settings = settings or get_settings()
    weight = settings.rollout.canary_weight if weight is None else int(weight)
    return start_rollout(weight, actor, settings)


def judge_canary(settings: Settings | None = None) -> CanaryDecision:
    """The decision the running rollout's evidence supports now (409 without a challenger)."""
    settings = settings or get_settings()
    snap = registry_snapshot(settings)
    if snap.challenger is None:
        raise ConflictError(f"model {snap.name} has no challenger to judge")
    return current_decision(settings, snap)


def _same_rollout(before: RegistrySnapshot, now: RegistrySnapshot) -> None:
    """409 when the rollout being judged is no longer the one in the registry."""
    fields = ("champion", "challenger", "weight", "mode", "rollout_started")
    changed = [f for f in fields if getattr(before, f) != getattr(now, f)]
    if changed:
        raise ConflictError(
            f"the rollout of version {before.challenger} was superseded in the registry "
            f"({', '.join(changed)} changed): its evidence no longer applies"
        )


def wait_for_decision(
    settings: Settings | None = None,
    on_look: Callable[[int, CanaryDecision], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    snap: RegistrySnapshot | None = None,
) -> tuple[CanaryDecision, int]:
    """Look at the evidence every ``look_every`` routed requests until a look concludes or the
    budget is spent; returns the decision and the number of looks taken. 409 when the rollout
    is changed in the registry meanwhile (another challenger, weight or mode)."""
    settings = settings or get_settings()
    r = settings.rollout
    snap = snap or registry_snapshot(settings)
    if snap.challenger is None:
        raise ConflictError(f"model {snap.name} has no challenger to judge")
    deadline = clock() + 60.0 * r.max_minutes
    looks = 0
    cursor = CaptureCursor()  # each poll reads only the capture files new since the last one
    while True:
        frame = read_rollout_frame(settings, snap.rollout_started, cursor)
        until = datetime.now(UTC) - timedelta(seconds=r.label_wait_s)
        available = available_requests(frame, snap.champion, snap.challenger, until)
        while (looks + 1) * r.look_every <= min(available, r.max_requests):
            looks += 1
            size = looks * r.look_every
            decision = look(settings, snap, frame, size, until, size >= r.max_requests)
            if on_look is not None:
                on_look(looks, decision)
            if decision.decision != EXTEND:
                return decision, looks
        if available >= r.max_requests:  # budget reached between two look sizes
            looks += 1
            return look(settings, snap, frame, r.max_requests, until, True), looks
        if clock() >= deadline:
            looks += 1
            decision = look(settings, snap, frame, r.max_requests, until, True)
            decision.reasons.insert(0, f"time budget of {r.max_minutes:g} min spent")
            return decision, looks
        sleep(r.poll_s)
        _same_rollout(snap, registry_snapshot(settings))


def act(
    decision: CanaryDecision,
    actor: str = "rollout",
    settings: Settings | None = None,
    record_id: str | None = None,
) -> dict[str, Any]:
    """Promote, or roll back (also on a halt), by the decision, but only the challenger the
    decision was taken on (409 otherwise); the audit record carries the reasons, the decision
    record's id and the numbers."""
    settings = settings or get_settings()
    reason = decision.reason if record_id is None else f"[{record_id}] {decision.reason}"
    numbers = decision.to_dict()
    numbers.pop("evidence", None)  # in the decision record; the audit line stays readable
    judged = decision.evidence.challenger.version
    if decision.decision == PROMOTE:
        return promote(actor, reason, numbers, settings, expected_challenger=judged)
    if decision.decision in (ROLLBACK, HALT):
        return rollback(actor, reason, numbers, settings, expected_challenger=judged)
    raise ConflictError(f"no decision yet: {decision.reason}")


def conclude(
    decision: CanaryDecision,
    looks: int,
    actor: str,
    settings: Settings,
    started: str | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Apply the decision, then store its record saying whether it was applied (a record is
    written even when the registry refused or failed, with the error): (record, audit)."""
    record_id = new_decision_id()
    try:
        audit = act(decision, actor, settings, record_id)
    except Exception as exc:
        record_rollout(
            decision, looks, settings, record_id, applied=False, error=str(exc), started=started
        )
        raise
    record = record_rollout(decision, looks, settings, record_id, applied=True, started=started)
    if decision.decision in (ROLLBACK, HALT):  # the rollback notification fires on this event
        emit_rollback(decision.evidence.challenger.version, decision.reason, settings)
    return record, audit


def abandon(exc: BaseException, actor: str, snap: RegistrySnapshot, settings: Settings) -> None:
    """A rollout that failed before deciding leaves no challenger on a weight: roll it back
    (best effort, audited) with the failure as the reason."""
    if isinstance(exc, ConflictError) or snap.challenger is None:
        return  # superseded: the registry already holds someone else's decision
    reason = f"rollout failed before a decision: {type(exc).__name__}: {exc}"[:500]
    try:
        rollback(actor, reason, settings=settings, expected_challenger=snap.challenger)
        emit_rollback(snap.challenger, reason, settings)
    except Exception as again:  # the original failure is what the caller must see
        logger.error("could not roll back after a failed rollout: %s", again)


def stale_rollout(snap: RegistrySnapshot, settings: Settings, now: datetime | None = None) -> str:
    """Why the rollout in ``snap`` is taken as crashed ("" when it is not): it is still open
    (its challenger holds the alias) ``rollout.stale_grace_minutes`` after its time budget
    (``rollout.max_minutes`` from the start stamped in the rollout tag)."""
    if snap.challenger is None or snap.rollout_started is None:
        return ""
    try:
        started = datetime.fromisoformat(snap.rollout_started)
    except ValueError:
        return ""
    started = started if started.tzinfo else started.replace(tzinfo=UTC)
    r = settings.rollout
    limit = started + timedelta(minutes=r.max_minutes + r.stale_grace_minutes)
    now = now or datetime.now(UTC)
    if now < limit:
        return ""
    return (
        f"stale rollout: version {snap.challenger} started {started.isoformat()} and is still "
        f"open {(now - started).total_seconds() / 60:.0f} min later (budget {r.max_minutes:g} "
        f"min + grace {r.stale_grace_minutes:g} min): its rollout crashed; canary weight "
        f"{snap.weight}% reset, challenger dropped"
    )


def reset_stale_rollout(
    actor: str = "rollout-watchdog", settings: Settings | None = None, now: datetime | None = None
) -> dict[str, Any] | None:
    """Roll back a crashed rollout (see :func:`stale_rollout`), audited with the reason; None
    when there is none. Only the challenger found stale is rolled back (compare-and-swap), so
    a rollout started meanwhile is untouched."""
    settings = settings or get_settings()
    snap = registry_snapshot(settings)
    reason = stale_rollout(snap, settings, now)
    if not reason:
        return None
    logger.warning("%s", reason)
    try:
        return rollback(actor, reason, None, settings, expected_challenger=snap.challenger)
    except ConflictError as exc:  # another writer moved first: nothing stale any more
        logger.info("stale rollout already handled: %s", exc)
        return None


def run_rollout(
    weight: int | None = None,
    actor: str = "rollout",
    settings: Settings | None = None,
    on_look: Callable[[int, CanaryDecision], None] | None = None,
) -> tuple[CanaryDecision, dict[str, Any]]:
    """start -> look until a conclusion -> promote or roll back -> record. Returns the decision
    and the audit record. A failure before the decision rolls the challenger back."""
    settings = settings or get_settings()
    start(weight, actor, settings)
    snap = registry_snapshot(settings)
    try:
        decision, looks = wait_for_decision(settings, on_look, snap=snap)
    except BaseException as exc:
        abandon(exc, actor, snap, settings)
        raise
    record, audit = conclude(decision, looks, actor, settings, snap.rollout_started)
    logger.info("rollout decided %s (%s): %s", decision.decision, record["id"], decision.reason)
    return decision, audit
