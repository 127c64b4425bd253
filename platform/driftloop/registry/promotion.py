"""The registry's one writer: every change of an alias (``champion``, ``challenger``) or of the
canary weight, mode and rollout tags happens here, and each is appended to the audit log.

MLflow keeps no alias history, so every change is appended as one JSON line to
``{state}/audit/promotions.jsonl``: ts (UTC ISO), then the fields of :class:`RegistryChange`
(action, actor, model, from_version, to_version, weight_before, weight_after, reason, metrics,
error), ``after`` (the registry state once the writes are done: champion, challenger, weight,
mode; null when it could not be read), and the hash chain (``prev``, ``hash``) of
:mod:`driftloop.registry.audit`. The record is fsynced before the change is acknowledged;
then the chain head is anchored on the model as tag ``driftloop.audit_head``, so ``driftloop audit
verify`` notices a truncated or re-chained log.

Writers and their audit actions: ``assign_alias_after_gate`` (``register_champion`` or
``register_challenger``, the training gate), ``promote`` (``promote``), ``rollback``
(``rollback``), ``restore`` (``restore``), ``set_weight`` (``set_weight`` or the caller's
action), ``start_rollout`` (``rollout_start``), ``set_mode`` (``set_mode``), ``reset_champion``
(``demo_reset``).

Every change that makes a version champion in place of another (register_champion, promote,
demo_reset) first tags the new champion with the version it replaces
(``driftloop.replaced_version``) and records it in the audit record (``replaced_version``), so
``restore`` can set the champion back to it. Restore does not re-tag: restoring again walks
further back through the champions, like an undo.

Every change then brings the standing tags and the description of the versions it touched up
to date (:mod:`driftloop.registry.description`; best effort, ``description_error`` in the
result when it fails). A promote, rollback, restore or a new challenger removes the rollout
stamp (``ROLLOUT_TAG``): the rollout ended.

Order of registry writes keeps serving safe: a promote moves ``champion`` first (replicas then
serve the new version to everybody), then sets the weight to 0 and drops ``challenger``; a new
challenger gets weight 0 before its alias; at every step each replica has a loaded model to
answer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from driftloop.errors import ConflictError, InvalidInputError
from driftloop.registry import audit
from driftloop.registry.client import (
    CHALLENGER,
    CHAMPION,
    MODE_TAG,
    MODES,
    REPLACED_TAG,
    ROLLOUT_TAG,
    WEIGHT_TAG,
    RegistrySnapshot,
    _delete_alias,
    _delete_model_tag,
    _set_alias,
    _set_model_tag,
    _set_version_tag,
    get_version,
    registry_snapshot,
    rollout_tag,
)
from driftloop.registry.description import record_change as describe_change
from driftloop.registry.promotion_card import write_promotion_card
from driftloop.settings import Settings, get_settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RegistryChange:
    """One audited registry change, as written to the audit log (after its ``ts``)."""

    action: str
    actor: str
    model: str
    from_version: str | None
    to_version: str | None
    weight_before: int
    weight_after: int
    reason: str
    metrics: dict[str, Any] = field(default_factory=dict)
    #: set when a registry write failed part-way: what failed, after how many of the writes
    error: str | None = None

    def record(self) -> dict[str, Any]:
        return asdict(self)


def audit_path(settings: Settings | None = None) -> Path:
    return audit.audit_path(settings)


def _audit(
    change: RegistryChange, settings: Settings, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Append ``change`` (with ``ts`` and ``extra`` fields) to the hash-chained audit log, fsynced
    before this returns; returns the record as written (with ``prev`` and ``hash``)."""
    record = {"ts": datetime.now(UTC).isoformat(), **change.record(), **(extra or {})}
    return audit.append(record, settings)


def read_audit(settings: Settings | None = None) -> list[dict[str, Any]]:
    """All audit records, oldest first (an unreadable line is skipped with a warning)."""
    return audit.read_records(settings)


def _change(
    action: str,
    snap: RegistrySnapshot,
    versions: tuple[str | None, str | None],
    weight_after: int,
    actor: str,
    reason: str,
    metrics: dict[str, Any] | None = None,
) -> RegistryChange:
    return RegistryChange(
        action=action,
        actor=actor,
        model=snap.name,
        from_version=versions[0],
        to_version=versions[1],
        weight_before=snap.weight,
        weight_after=weight_after,
        reason=reason,
        metrics=metrics or {},
    )


def _apply(
    change: RegistryChange,
    writes: list[Callable[[], None]],
    settings: Settings,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run the registry writes of ``change`` in order, then audit it with the registry state
    after them (``after``), then anchor the log's new head in the registry (:func:`_anchor`).
    When a write fails the change is audited (and anchored) all the same (``error`` says which
    write, after how many succeeded), since the writes before it did happen, and the failure is
    raised. The audit log's lock is held from the first write to the anchor, so the
    external-change check (``audit.detect_external``) never mistakes a change in progress for
    one made outside driftloop, and anchors are written in the log's order. ``extra``: more
    fields of the record (``replaced_version``)."""
    with audit.holding(settings) as log:
        assert log is not None
        done = 0
        try:
            for write in writes:
                write()
                done += 1
        except Exception as exc:
            error = f"write {done + 1} of {len(writes)} failed: {type(exc).__name__}: {exc}"
            failed = replace(change, error=error[:500])
            fields = {**(extra or {}), "after": _state_after(settings)}
            _anchor(_audit(failed, settings, fields), log, settings)
            raise
        fields = {**(extra or {}), "after": _state_after(settings)}
        record = _anchor(_audit(change, settings, fields), log, settings)
    # the versions' standing tags and descriptions (best effort: never fails the change)
    return {**record, **describe_change(record, settings)}


def _anchor(record: dict[str, Any], log: audit.AuditLog, settings: Settings) -> dict[str, Any]:
    """Write the log's head (``"<line>:<hash>"`` of ``record``, just appended and fsynced) to
    the registered model's tag ``audit.HEAD_TAG`` with the registry writer the change used.
    Returns ``record``; when the write fails (the change is made and recorded all the same) the
    failure is logged and returned in ``anchor_error`` (not in the log's record)."""
    head = audit.Anchor(log.line_count(), record["hash"])
    try:
        _set_model_tag(audit.HEAD_TAG, str(head), settings)
    except Exception as exc:
        error = f"could not anchor the audit head {head}: {type(exc).__name__}: {exc}"[:500]
        logger.error("%s", error)
        return {**record, "anchor_error": error}
    return record


def _state_after(settings: Settings) -> dict[str, Any] | None:
    """The registry state for the audit record (one registry read; None when it fails)."""
    try:
        return audit.registry_state(registry_snapshot(settings))
    except Exception:
        logger.warning("could not read the registry state after a change", exc_info=True)
        return None


def _retire_challenger(settings: Settings) -> list[Callable[[], None]]:
    """The writes that take the challenger out of serving: weight 0, then drop its alias."""
    return [lambda: _write_weight(0, settings), lambda: _delete_alias(CHALLENGER, settings)]


def _end_rollout(snap: RegistrySnapshot, settings: Settings) -> list[Callable[[], None]]:
    """The write that removes the rollout stamp once the rollout ended (none when unset): a
    stamp left behind names a challenger that is gone."""
    if ROLLOUT_TAG not in snap.tags:
        return []
    return [lambda: _delete_model_tag(ROLLOUT_TAG, settings)]


def _crown(
    version: str, snap: RegistrySnapshot, settings: Settings
) -> tuple[list[Callable[[], None]], dict[str, Any]]:
    """The writes that make ``version`` champion in place of ``snap.champion`` (first the new
    champion's REPLACED_TAG, then the alias: the alias never points at a version that does not
    say what it replaced), and the audit fields that record the replaced version."""
    replaced = snap.champion if snap.champion not in (None, version) else None
    writes: list[Callable[[], None]] = []
    if replaced is not None:
        writes.append(lambda: _set_version_tag(version, REPLACED_TAG, replaced, settings))
    writes.append(lambda: _set_alias(CHAMPION, version, settings))
    return writes, {"replaced_version": replaced}


def _checked_weight(weight: int) -> int:
    """The one validation of a canary weight (readers only parse it: ``registry_snapshot``)."""
    if not 0 <= int(weight) <= 100:
        raise InvalidInputError(f"canary weight must be an integer 0..100, got {weight}")
    return int(weight)


def _write_weight(weight: int, settings: Settings) -> None:
    _set_model_tag(WEIGHT_TAG, str(weight), settings)


def assign_alias_after_gate(
    version: str,
    alias: str,
    reason: str = "",
    metrics: dict[str, Any] | None = None,
    settings: Settings | None = None,
    actor: str = "train",
) -> dict[str, Any]:
    """Point ``alias`` at a newly registered ``version`` (the training gate's decision).

    ``champion``: only the alias moves. ``challenger``: weight 0 first, then the alias, so a new
    challenger never inherits an earlier one's traffic. Audit action ``register_<alias>``.
    """
    if alias not in (CHAMPION, CHALLENGER):
        raise InvalidInputError(f"alias must be {CHAMPION} or {CHALLENGER}, got {alias!r}")
    settings = settings or get_settings()
    snap = registry_snapshot(settings)
    version = str(version)
    writes: list[Callable[[], None]]
    extra: dict[str, Any] | None = None
    if alias == CHALLENGER:
        writes = [lambda: _write_weight(0, settings), lambda: _set_alias(alias, version, settings)]
        writes += _end_rollout(snap, settings)  # a rollout of the replaced challenger ended
        versions, weight_after = (snap.challenger, version), 0
    else:
        writes, extra = _crown(version, snap, settings)
        versions, weight_after = (snap.champion, version), snap.weight
    change = _change(f"register_{alias}", snap, versions, weight_after, actor, reason, metrics)
    return _apply(change, writes, settings, extra)


def _expect(snap: RegistrySnapshot, expected: str | None, action: str) -> None:
    """409 when the challenger is not the one a decision was taken on (compare-and-swap: a
    challenger registered during a rollout must not be promoted on another one's evidence)."""
    if snap.challenger is None:
        raise ConflictError(f"model {snap.name} has no challenger to {action}")
    if expected is not None and snap.challenger != str(expected):
        raise ConflictError(
            f"the challenger of model {snap.name} is now version {snap.challenger}, not "
            f"{expected} that was judged: refusing to {action} it"
        )


def promote(
    actor: str = "cli",
    reason: str = "",
    metrics: dict[str, Any] | None = None,
    settings: Settings | None = None,
    expected_challenger: str | None = None,
) -> dict[str, Any]:
    """champion <- challenger's version, drop challenger, weight 0. 409 without a challenger,
    when it is not ``expected_challenger`` (when given: compare-and-swap on the version the
    caller means), or when it did not go through a canary (no rollout of this challenger was
    started: the rollout tag names another version or none)."""
    settings = settings or get_settings()
    snap = registry_snapshot(settings)
    _expect(snap, expected_challenger, "promote")
    assert snap.challenger is not None
    challenger = snap.challenger
    if snap.rollout_started is None:
        raise ConflictError(
            f"version {challenger} of model {snap.name} did not go through a canary (no rollout "
            "of it was started): start one (`driftloop rollout start`) before promoting it"
        )
    crown, extra = _crown(challenger, snap, settings)
    writes = [*crown, *_retire_challenger(settings), *_end_rollout(snap, settings)]
    change = _change("promote", snap, (snap.champion, challenger), 0, actor, reason, metrics)
    record = _apply(change, writes, settings, extra)
    # the champion-vs-challenger card (best effort: never fails a promotion that happened)
    return {**record, **write_promotion_card(snap.champion, challenger, record, settings)}


def rollback(
    actor: str = "cli",
    reason: str = "",
    metrics: dict[str, Any] | None = None,
    settings: Settings | None = None,
    expected_challenger: str | None = None,
) -> dict[str, Any]:
    """Drop the challenger and set the weight to 0 (all traffic back to the champion). 409
    without a challenger, or when it is not ``expected_challenger`` (when given)."""
    settings = settings or get_settings()
    snap = registry_snapshot(settings)
    _expect(snap, expected_challenger, "roll back")
    versions = (snap.challenger, snap.champion)
    change = _change("rollback", snap, versions, 0, actor, reason, metrics)
    writes = [*_retire_challenger(settings), *_end_rollout(snap, settings)]
    return _apply(change, writes, settings)


#: audit actions that make ``to_version`` the champion in place of ``from_version``
CROWNING_ACTIONS = ("register_champion", "promote", "demo_reset", "restore")


def former_champions(model: str, records: list[dict[str, Any]]) -> set[str]:
    """Every version the audit log shows as champion of ``model`` at some point: the champion
    of each recorded registry state (``after``, and ``before`` of an external change) and both
    ends of every champion change."""
    seen: set[str] = set()
    for record in records:
        if record.get("model") != model:
            continue
        for state in (record.get("before"), record.get("after")):
            if isinstance(state, dict) and state.get("champion"):
                seen.add(str(state["champion"]))
        if record.get("action") in CROWNING_ACTIONS:
            seen.update(str(v) for v in (record.get("from_version"), record.get("to_version")) if v)
    return seen


def _replaced_per_audit(model: str, champion: str, records: list[dict[str, Any]]) -> str | None:
    """The champion that ``champion`` replaced, per the latest audited change that crowned it
    (a restore is no such change: restoring goes back, never forth)."""
    for record in reversed(records):
        if (
            record.get("model") == model
            and record.get("action") in ("register_champion", "promote", "demo_reset")
            and str(record.get("to_version")) == champion
            and not record.get("error")
        ):
            replaced = record.get("from_version")
            return str(replaced) if replaced else None
    return None


def restore_target(
    snap: RegistrySnapshot, to: str | None, settings: Settings
) -> tuple[str, str, list[dict[str, Any]]]:
    """``(version, where it came from, audit records)`` that :func:`restore` would set as
    champion. ``to`` must have been champion before per the audit log (409 otherwise); without
    it the champion's REPLACED_TAG, else the audited change that crowned it, decides (409 when
    neither names one). 400 for a malformed ``to``, 404 when the version no longer exists."""
    if to is not None and not (str(to).isdigit() and len(str(to)) <= 32):
        raise InvalidInputError(f"version to restore must be a version number, got {to!r}")
    if snap.champion is None:
        raise ConflictError(f"model {snap.name} has no champion: there is nothing to restore")
    records = read_audit(settings)
    if to is not None:
        target, source = str(int(to)), "requested"
        known = former_champions(snap.name, records)
        if target not in known:
            shown = ", ".join(sorted(known, key=int)) or "none"
            raise ConflictError(
                f"version {target} of model {snap.name} was never champion per the audit log "
                f"({audit_path(settings)}; former champions: {shown}): refusing to restore it"
            )
    else:
        tags = get_version(snap.champion, settings, snap.name).tags
        target, source = tags.get(REPLACED_TAG, ""), f"tag {REPLACED_TAG}"
        if not target:
            target = _replaced_per_audit(snap.name, snap.champion, records) or ""
            source = "audit log"
        if not target:
            raise ConflictError(
                f"champion version {snap.champion} of model {snap.name} replaced no recorded "
                "champion: there is nothing to restore to (name a former champion with --to)"
            )
    if target == snap.champion:
        raise ConflictError(f"version {target} of model {snap.name} is the champion already")
    get_version(target, settings, snap.name)  # NotFoundError (404) when it was deleted
    return target, source, records


def restore(
    to: str | None = None,
    actor: str = "cli",
    reason: str = "",
    settings: Settings | None = None,
) -> dict[str, Any]:
    """champion <- the version the current champion replaced (its REPLACED_TAG, recorded at
    promotion), or ``to`` (a former champion per the audit log); any challenger, canary
    weight and rollout stamp are dropped. Audit action ``restore`` (from: the champion, to:
    the restored version). 409 when there is nothing to restore to (see
    :func:`restore_target`)."""
    settings = settings or get_settings()
    snap = registry_snapshot(settings)
    target, source, _ = restore_target(snap, to, settings)
    writes: list[Callable[[], None]] = [lambda: _set_alias(CHAMPION, target, settings)]
    if snap.challenger is not None or snap.weight:
        writes += _retire_challenger(settings)
    writes += _end_rollout(snap, settings)
    why = reason or f"restore version {target} as champion"
    numbers = {"target_from": source, "dropped_challenger": snap.challenger}
    change = _change("restore", snap, (snap.champion, target), 0, actor, why, numbers)
    return _apply(change, writes, settings)


def set_weight(
    weight: int,
    actor: str = "cli",
    reason: str = "",
    settings: Settings | None = None,
    action: str = "set_weight",
) -> dict[str, Any]:
    """Set the challenger's traffic share (percent). A positive weight needs a challenger."""
    weight = _checked_weight(weight)
    settings = settings or get_settings()
    snap = registry_snapshot(settings)
    if weight > 0 and snap.challenger is None:
        raise ConflictError(f"model {snap.name} has no challenger to send {weight}% of traffic to")
    versions = (snap.champion, snap.challenger)
    change = _change(action, snap, versions, weight, actor, reason)
    return _apply(change, [lambda: _write_weight(weight, settings)], settings)


def set_mode(
    mode: str, actor: str = "cli", reason: str = "", settings: Settings | None = None
) -> dict[str, Any]:
    """Registry override of settings.serving.mode: ``canary`` or ``shadow`` (``""`` clears it).
    The audit record's metrics hold ``mode_before`` and ``mode_after``."""
    if mode not in (*MODES, ""):
        raise InvalidInputError(f"canary mode must be canary or shadow, got {mode!r}")
    settings = settings or get_settings()
    snap = registry_snapshot(settings)
    write: Callable[[], None] = (
        (lambda: _set_model_tag(MODE_TAG, mode, settings))
        if mode
        else (lambda: _delete_model_tag(MODE_TAG, settings))
    )
    versions = (snap.champion, snap.challenger)
    modes = {"mode_before": snap.mode, "mode_after": mode or None}
    change = _change("set_mode", snap, versions, snap.weight, actor, reason, modes)
    return _apply(change, [write], settings)


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
    crown, extra = _crown(str(version), snap, settings)
    writes = [*crown, *_retire_challenger(settings)]
    change = _change("demo_reset", snap, (snap.champion, str(version)), 0, actor, reason)
    return _apply(change, writes, settings, extra)


def start_rollout(
    weight: int, actor: str = "rollout", settings: Settings | None = None
) -> dict[str, Any]:
    """Stamp the start of the challenger's rollout in the registry and put it on ``weight``
    percent (audit action ``rollout_start``). 409 without a challenger."""
    weight = _checked_weight(weight)
    settings = settings or get_settings()
    snap = registry_snapshot(settings)
    if snap.challenger is None:
        raise ConflictError(f"model {snap.name} has no challenger to roll out")
    tag = rollout_tag(datetime.now(UTC).isoformat(), snap.challenger)
    writes = [
        lambda: _set_model_tag(ROLLOUT_TAG, tag, settings),
        lambda: _write_weight(weight, settings),
    ]
    reason = f"rollout of version {snap.challenger} started"
    versions = (snap.champion, snap.challenger)
    return _apply(_change("rollout_start", snap, versions, weight, actor, reason), writes, settings)
