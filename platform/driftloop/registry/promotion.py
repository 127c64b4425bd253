"""Promotion, rollback and canary weight: registry changes with an audit trail.

MLflow keeps no alias history, so every change is appended as one JSON line to
``{state}/audit/promotions.jsonl``: ts (UTC ISO), action, actor, model, from_version, to_version,
weight_before, weight_after, reason, metrics. Order of registry writes keeps serving safe: a
promote moves ``champion`` first (replicas then serve the new version to everybody), then sets
the weight to 0 and drops ``challenger``; at every step each replica has a loaded model to answer.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from driftloop.errors import ConflictError, InvalidInputError
from driftloop.registry.client import (
    CHALLENGER,
    CHAMPION,
    ROLLOUT_TAG,
    RegistrySnapshot,
    delete_alias,
    registry_snapshot,
    set_alias,
    set_canary_weight,
    set_model_tag,
)
from driftloop.settings import Settings, get_settings

logger = logging.getLogger(__name__)


def audit_path(settings: Settings | None = None) -> Path:
    settings = settings or get_settings()
    return settings.state / "audit" / "promotions.jsonl"


def append_audit(record: dict[str, Any], settings: Settings | None = None) -> dict[str, Any]:
    """Append one record (``ts`` added when absent) as a JSON line; returns the record."""
    path = audit_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"ts": datetime.now(UTC).isoformat(), **record}
    line = json.dumps(record, default=str, sort_keys=False) + "\n"
    # One write() on an O_APPEND descriptor: lines of concurrent writers do not interleave.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
    logger.info("audit: %s", line.strip())
    return record


def read_audit(settings: Settings | None = None) -> list[dict[str, Any]]:
    """All audit records, oldest first (an unreadable line is skipped with a warning)."""
    path = audit_path(settings)
    if not path.exists():
        return []
    out = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            logger.warning("skipping malformed audit line %d of %s", n, path)
    return out


def _record(
    action: str,
    snap: RegistrySnapshot,
    versions: tuple[str | None, str | None],
    weight_after: int,
    actor: str,
    reason: str,
    metrics: dict[str, Any] | None,
    settings: Settings,
) -> dict[str, Any]:
    return append_audit(
        {
            "action": action,
            "actor": actor,
            "model": snap.name,
            "from_version": versions[0],
            "to_version": versions[1],
            "weight_before": snap.weight,
            "weight_after": weight_after,
            "reason": reason,
            "metrics": metrics or {},
        },
        settings,
    )


def promote(
    actor: str = "cli",
    reason: str = "",
    metrics: dict[str, Any] | None = None,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """champion <- challenger's version, drop challenger, weight 0. 409 without a challenger."""
    settings = settings or get_settings()
    snap = registry_snapshot(settings)
    if snap.challenger is None:
        raise ConflictError(f"model {snap.name} has no challenger to promote")
    set_alias(CHAMPION, snap.challenger, settings)
    set_canary_weight(0, settings)
    delete_alias(CHALLENGER, settings)
    versions = (snap.champion, snap.challenger)
    return _record("promote", snap, versions, 0, actor, reason, metrics, settings)


def rollback(
    actor: str = "cli",
    reason: str = "",
    metrics: dict[str, Any] | None = None,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Drop the challenger and set the weight to 0 (all traffic back to the champion)."""
    settings = settings or get_settings()
    snap = registry_snapshot(settings)
    if snap.challenger is None:
        raise ConflictError(f"model {snap.name} has no challenger to roll back")
    set_canary_weight(0, settings)
    delete_alias(CHALLENGER, settings)
    versions = (snap.challenger, snap.champion)
    return _record("rollback", snap, versions, 0, actor, reason, metrics, settings)


def set_weight(
    weight: int,
    actor: str = "cli",
    reason: str = "",
    settings: Settings | None = None,
    action: str = "set_weight",
) -> dict[str, Any]:
    """Set the challenger's traffic share (percent). A positive weight needs a challenger."""
    if not 0 <= int(weight) <= 100:
        raise InvalidInputError(f"canary weight must be an integer 0..100, got {weight}")
    settings = settings or get_settings()
    snap = registry_snapshot(settings)
    if weight > 0 and snap.challenger is None:
        raise ConflictError(f"model {snap.name} has no challenger to send {weight}% of traffic to")
    set_canary_weight(weight, settings)
    versions = (snap.champion, snap.challenger)
    return _record(action, snap, versions, int(weight), actor, reason, None, settings)


def reset_champion(
    version: str,
    actor: str = "demo",
    reason: str = "driftloop demo starts its replay from this champion",
    settings: Settings | None = None,
) -> dict[str, Any] | None:
    """champion <- ``version``, drop any challenger, weight 0 (None when already so)."""
    settings = settings or get_settings()
    snap = registry_snapshot(settings)
    if snap.champion == str(version) and snap.challenger is None:
        return None
    set_alias(CHAMPION, str(version), settings)
    set_canary_weight(0, settings)
    delete_alias(CHALLENGER, settings)
    versions = (snap.champion, str(version))
    return _record("demo_reset", snap, versions, 0, actor, reason, None, settings)


def start_rollout(
    weight: int, actor: str = "rollout", settings: Settings | None = None
) -> dict[str, Any]:
    """Stamp the start of the challenger's rollout in the registry and put it on ``weight``
    percent. 409 without a challenger."""
    settings = settings or get_settings()
    snap = registry_snapshot(settings)
    if snap.challenger is None:
        raise ConflictError(f"model {snap.name} has no challenger to roll out")
    stamp = datetime.now(UTC).isoformat()
    set_model_tag(ROLLOUT_TAG, f"{stamp}|{snap.challenger}", settings)
    reason = f"rollout of version {snap.challenger} started"
    return set_weight(weight, actor, reason, settings, "rollout_start")
