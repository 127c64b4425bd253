"""The closed loop's retrain ledger and its guards.

Retrains are recorded in a ledger, ``{state}/loop/retrains.jsonl`` (one JSON line per state
change of a retrain: ``started``, then ``finished`` or ``failed``; refused requests are
``skipped``). Guards read it:

- **cooldown**: no retrain of a model within ``monitoring.retrain_cooldown_minutes`` of the last
  one that started;
- **daily budget**: at most ``monitoring.daily_retrain_budget`` retrains per model per UTC day;
- **de-duplication**: a window (model + train months) that already started or finished retrains
  once; a failed one may run again.
- **lease**: a claim that neither finished nor failed within ``monitoring.retrain_lease_minutes``
  (its run was killed) no longer counts for any guard; the next claim records it ``expired``.

The monitor checks the guards before it emits ``driftloop.drift.detected`` (else it emits
``driftloop.drift.suppressed`` with the reason, for the record); the retrain flow claims its
window under a file lock, so two concurrent requests cannot both pass. The Prefect automation
adds its own cooldown (its trigger's ``within``), so a burst of events starts one flow run.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from driftloop.settings import Settings, get_settings

logger = logging.getLogger(__name__)

STARTED, FINISHED, FAILED, SKIPPED = "started", "finished", "failed", "skipped"
EXPIRED = "expired"


def window_key(start_month: str, end_month: str) -> str:
    return f"{start_month}..{end_month}"


@dataclass
class RetrainRecord:
    """One retrain's latest state in the ledger."""

    id: str
    model: str
    window: str
    status: str
    requested_at: str
    updated_at: str
    reason: str = ""
    source: str = ""
    outcome: dict[str, Any] = field(default_factory=dict)

    @property
    def requested(self) -> datetime:
        return datetime.fromisoformat(self.requested_at)


@dataclass(frozen=True)
class GuardDecision:
    allowed: bool
    reason: str


def ledger_path(settings: Settings | None = None) -> Path:
    settings = settings or get_settings()
    return settings.state / "loop" / "retrains.jsonl"


@contextlib.contextmanager
def _locked(settings: Settings) -> Iterator[Path]:
    path = ledger_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    with (path.parent / "retrains.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield path
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _append(path: Path, record: RetrainRecord) -> None:
    with path.open("a") as out:
        out.write(json.dumps(asdict(record), default=str) + "\n")


def _read(path: Path) -> list[RetrainRecord]:
    if not path.exists():
        return []
    latest: dict[str, RetrainRecord] = {}
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            latest[data["id"]] = RetrainRecord(**data)
        except (ValueError, TypeError, KeyError):
            logger.warning("skipping malformed ledger line in %s", path)
    return sorted(latest.values(), key=lambda r: r.requested_at)


def list_retrains(
    settings: Settings | None = None, model: str | None = None
) -> list[RetrainRecord]:
    """Every retrain in the ledger (latest state each), oldest first."""
    records = _read(ledger_path(settings or get_settings()))
    return [r for r in records if model is None or r.model == model]


def _now(now: datetime | None) -> datetime:
    now = now or datetime.now(UTC)
    return now if now.tzinfo else now.replace(tzinfo=UTC)


def _expired(
    records: list[RetrainRecord], settings: Settings, now: datetime
) -> list[RetrainRecord]:
    """Claims still ``started`` after their lease: their run was killed (no finish, no fail)."""
    lease = timedelta(minutes=settings.monitoring.retrain_lease_minutes)
    return [r for r in records if r.status == STARTED and now - r.requested >= lease]


def _check(
    records: list[RetrainRecord], settings: Settings, model: str, window: str, now: datetime
) -> GuardDecision:
    m = settings.monitoring
    expired = {r.id for r in _expired(records, settings, now)}
    ran = [
        r
        for r in records
        if r.model == model and r.status not in (SKIPPED, EXPIRED) and r.id not in expired
    ]
    same = [r for r in ran if r.window == window and r.status in (STARTED, FINISHED)]
    if same:
        return GuardDecision(
            False,
            f"duplicate: window {window} already retrained ({same[-1].status}, {same[-1].id})",
        )
    if ran:
        last = max(r.requested for r in ran)
        cooldown = timedelta(minutes=m.retrain_cooldown_minutes)
        if now - last < cooldown:
            left = (cooldown - (now - last)).total_seconds()
            return GuardDecision(
                False,
                f"cooldown: last retrain of {model} started "
                f"{last.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC, "
                f"{left:.0f} s of {m.retrain_cooldown_minutes:g} min left",
            )
    today = [r for r in ran if r.requested.astimezone(UTC).date() == now.astimezone(UTC).date()]
    if len(today) >= m.daily_retrain_budget:
        return GuardDecision(
            False, f"budget: {len(today)} retrains of {model} today (max {m.daily_retrain_budget})"
        )
    return GuardDecision(True, "allowed")


def check_guards(
    start_month: str,
    end_month: str,
    settings: Settings | None = None,
    model: str | None = None,
    now: datetime | None = None,
) -> GuardDecision:
    """Would a retrain of ``model`` on ``start_month..end_month`` pass the guards now?"""
    settings = settings or get_settings()
    model = model or settings.mlflow.registered_model
    records = _read(ledger_path(settings))
    return _check(records, settings, model, window_key(start_month, end_month), _now(now))


def claim_retrain(
    start_month: str,
    end_month: str,
    settings: Settings | None = None,
    model: str | None = None,
    reason: str = "",
    source: str = "",
    force: bool = False,
    now: datetime | None = None,
) -> tuple[RetrainRecord, GuardDecision]:
    """Atomically check the guards and record the retrain as ``started`` (or ``skipped``).
    ``force`` bypasses the guards (a person asked for it)."""
    settings = settings or get_settings()
    model = model or settings.mlflow.registered_model
    window = window_key(start_month, end_month)
    at = _now(now)
    with _locked(settings) as path:
        records = _read(path)
        for stale in _expired(records, settings, at):
            _append(path, _expire(stale, settings, at))
        decision = (
            GuardDecision(True, "forced") if force else _check(records, settings, model, window, at)
        )
        record = RetrainRecord(
            id=uuid.uuid4().hex[:12],
            model=model,
            window=window,
            status=STARTED if decision.allowed else SKIPPED,
            requested_at=at.isoformat(),
            updated_at=at.isoformat(),
            reason=reason,
            source=source,
            outcome={} if decision.allowed else {"guard": decision.reason},
        )
        _append(path, record)
    logger.info("retrain %s of %s %s: %s", record.id, model, window, decision.reason)
    return record, decision


def _expire(record: RetrainRecord, settings: Settings, at: datetime) -> RetrainRecord:
    lease = settings.monitoring.retrain_lease_minutes
    logger.warning(
        "retrain %s of %s %s neither finished nor failed within its %g min lease: expired",
        record.id,
        record.model,
        record.window,
        lease,
    )
    outcome = {
        **record.outcome,
        "expired": f"no finish or failure within the {lease:g} min lease (the run was killed?)",
    }
    return replace(record, status=EXPIRED, updated_at=at.isoformat(), outcome=outcome)


def archive_ledger(settings: Settings | None = None) -> Path | None:
    """Move the ledger aside (a replay that starts over, like the demo); returns where to."""
    settings = settings or get_settings()
    with _locked(settings) as path:
        if not path.exists() or not path.read_text().strip():
            return None
        target = path.parent / "archive" / f"retrains-{datetime.now(UTC):%Y%m%dT%H%M%S%f}.jsonl"
        target.parent.mkdir(parents=True, exist_ok=True)
        path.replace(target)
    return target


def finish_retrain(
    record: RetrainRecord,
    outcome: dict[str, Any],
    settings: Settings | None = None,
    failed: bool = False,
) -> RetrainRecord:
    """Record the end of a started retrain with its outcome."""
    settings = settings or get_settings()
    done = RetrainRecord(
        **{
            **asdict(record),
            "status": FAILED if failed else FINISHED,
            "updated_at": datetime.now(UTC).isoformat(),
            "outcome": outcome,
        }
    )
    with _locked(settings) as path:
        _append(path, done)
    return done
