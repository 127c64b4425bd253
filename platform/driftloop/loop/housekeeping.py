"""Retention: remove what the platform accumulates once it is older than ``settings.retention``
says, except what a registered model version's lineage still references.

What expires, by what time:

=============  =========================================================  =====================
kind           what                                                       age
=============  =========================================================  =====================
captures       ``{state}/capture/predictions/date=D/`` (whole partitions)  D, the UTC day the
               and ``{state}/capture/explanations/date=D/`` (sampled      prediction was served
               explanations; a version's attribution reference is frozen
               apart, so it outlives them)
feedback       ``{state}/capture/feedback/date=D/``                        D, the day posted
reports        ``{state}/reports/<id>/``                                   ``created`` of the
                                                                          report (else its
                                                                          name, else mtime)
quarantine     ``{state}/rejected/*`` (rows of refused ingests)            file mtime
dvc_cache      objects in the data repository's local DVC cache            see below
=============  =========================================================  =====================

Captures are partitioned by the wall-clock day they were served (``ts``), never by the flight's
date: the demo replays 2013 flights today, and its captures are today's. A partition goes once
its whole day is older than the limit.

What a registered version references is kept (every version of the registered model, whatever
its alias): its data revision (``driftloop.data_rev``); any report whose id or folder a version
tag names (the monitor's ``driftloop.drift.report`` / ``driftloop.drift.latest``); any capture
window a version tag records (``"window": [start, end]`` in a JSON tag, the monitor's latest
window) or a kept report judged: the prediction partitions of the window, and the feedback
partitions from a day before to seven days after it (where its labels are read). Expired but
referenced items are listed as ``kept`` with the version that holds them. With MLflow
unreachable nothing is removed: what is referenced cannot be known (fail closed).

DVC cache: objects no recent commit, no registered version's data revision and not the
workspace uses, and only those the DVC remote holds (:mod:`driftloop.loop.dvc_cache`).

Every run (dry or not) appends its report to ``{state}/housekeeping/runs.jsonl``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from driftloop.data.capture import FEEDBACK, PREDICTIONS, kind_dir
from driftloop.errors import ConfigurationError, ConflictError
from driftloop.loop.dvc_cache import KIND as DVC_CACHE
from driftloop.loop.dvc_cache import sweep_dvc_cache
from driftloop.loop.references import References, Window, collect_references, parse_utc, window_of
from driftloop.monitoring.attribution import explanations_dir
from driftloop.monitoring.reports import SUMMARY_FILE, reports_dir
from driftloop.settings import Settings, get_settings

logger = logging.getLogger(__name__)

CAPTURES, FEEDBACK_KIND, REPORTS, QUARANTINE = ("captures", "feedback", "reports", "quarantine")
KINDS = (CAPTURES, FEEDBACK_KIND, REPORTS, QUARANTINE, DVC_CACHE)
#: Feedback for a window's predictions is read from a day before to a week after it.
FEEDBACK_BEFORE, FEEDBACK_AFTER = timedelta(days=1), timedelta(days=7)


@dataclass(frozen=True)
class Item:
    """One file or folder housekeeping removed (or would remove, or kept)."""

    kind: str
    path: str
    bytes: int
    age_days: float
    why: str


@dataclass
class HousekeepingReport:
    """What one housekeeping run found: removed (or, dry, to be removed) and kept expired items
    with the reason, the limits it applied and the references it protected."""

    started: str
    dry_run: bool
    limits_days: dict[str, float]
    cutoffs: dict[str, str]
    removed: list[Item] = field(default_factory=list)
    kept: list[Item] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    references: dict[str, Any] = field(default_factory=dict)

    @property
    def bytes_removed(self) -> int:
        return sum(i.bytes for i in self.removed)

    def totals(self) -> dict[str, dict[str, int]]:
        """Per kind: items and bytes removed, items kept."""
        out = {k: {"removed": 0, "bytes": 0, "kept": 0} for k in KINDS}
        for item in self.removed:
            out[item.kind]["removed"] += 1
            out[item.kind]["bytes"] += item.bytes
        for item in self.kept:
            out[item.kind]["kept"] += 1
        return out

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "bytes_removed": self.bytes_removed, "totals": self.totals()}

    def markdown(self) -> str:
        verb = "would remove" if self.dry_run else "removed"
        lines = [
            f"## Housekeeping {self.started}{' (dry run)' if self.dry_run else ''}",
            "",
            f"{verb} {len(self.removed)} items, {_size(self.bytes_removed)}; kept "
            f"{len(self.kept)} expired items that are referenced",
            "",
            f"| kind | kept days | older than | {verb} | bytes | kept (referenced) |",
            "|---|---:|---|---:|---:|---:|",
        ]
        for kind, t in self.totals().items():
            lines.append(
                f"| {kind} | {self.limits_days[kind]:g} | {self.cutoffs[kind]} | {t['removed']} "
                f"| {_size(t['bytes'])} | {t['kept']} |"
            )
        if self.kept:
            lines += ["", "Kept:", ""]
            lines += [f"- `{i.path}` ({i.kind}): {i.why}" for i in self.kept[:50]]
        if self.removed:
            lines += ["", f"{verb.capitalize()}:", ""]
            lines += [
                f"- `{i.path}` ({i.kind}, {_size(i.bytes)}): {i.why}" for i in self.removed[:50]
            ]
            if len(self.removed) > 50:
                lines.append(f"- ... and {len(self.removed) - 50} more")
        if self.errors:
            lines += ["", "Errors:", ""] + [f"- {e}" for e in self.errors]
        return "\n".join(lines)


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("KB", "MB", "GB"):
        value /= 1024
        if value < 1024 or unit == "GB":
            break
    return f"{value:.1f} {unit}"


# ---- the sweep --------------------------------------------------------------------------------
class _Sweep:
    """One housekeeping run's state: the clock, the limits, the report, removal."""

    def __init__(self, settings: Settings, now: datetime, dry_run: bool) -> None:
        self.settings, self.now, self.dry_run = settings, now, dry_run
        r = settings.retention
        self.days = {
            CAPTURES: r.captures_days,
            FEEDBACK_KIND: r.feedback_days,
            REPORTS: r.reports_days,
            QUARANTINE: r.quarantine_days,
            DVC_CACHE: r.dvc_cache_days,
        }
        self.cutoff = {k: now - timedelta(days=d) for k, d in self.days.items()}
        self.report = HousekeepingReport(
            started=now.isoformat(timespec="seconds"),
            dry_run=dry_run,
            limits_days=dict(self.days),
            cutoffs={k: v.isoformat(timespec="seconds") for k, v in self.cutoff.items()},
        )

    def rel(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.settings.state))
        except ValueError:
            return str(path)

    def age_days(self, when: datetime) -> float:
        return round((self.now - when).total_seconds() / 86400.0, 3)

    def keep(self, kind: str, path: Path, size: int, when: datetime, why: str) -> None:
        self.report.kept.append(Item(kind, self.rel(path), size, self.age_days(when), why))

    def remove(self, kind: str, path: Path, size: int, when: datetime, why: str) -> None:
        if not self.dry_run:
            try:
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink()
            except OSError as exc:
                self.report.errors.append(f"could not remove {self.rel(path)}: {exc}")
                return
        self.report.removed.append(Item(kind, self.rel(path), size, self.age_days(when), why))

    def error(self, message: str) -> None:
        self.report.errors.append(message)


def _tree_bytes(path: Path) -> int:
    if not path.is_dir():
        return path.lstat().st_size
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += (Path(root) / name).lstat().st_size
    return total


def _partitions(root: Path) -> Iterator[tuple[Path, date]]:
    if not root.is_dir():
        return
    for part in sorted(root.glob("date=*")):
        try:
            yield part, date.fromisoformat(part.name.removeprefix("date="))
        except ValueError:
            continue  # not a partition of ours: left alone


def _day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _overlapping(
    windows: Iterable[Window],
    start: datetime,
    end: datetime,
    widen: tuple[timedelta, timedelta] = (timedelta(0), timedelta(0)),
) -> list[str]:
    """Who holds a window overlapping [start, end) (each window widened by ``widen``)."""
    before, after = widen
    return [who for lo, hi, who in windows if lo - before < end and start <= hi + after]


def _sweep_captures(sweep: _Sweep, windows: list[Window]) -> None:
    same = (timedelta(0), timedelta(0))
    for kind, folder, widen in (
        (CAPTURES, kind_dir(PREDICTIONS, sweep.settings), same),
        (CAPTURES, explanations_dir(sweep.settings), same),  # the sampled explanations
        (FEEDBACK_KIND, kind_dir(FEEDBACK, sweep.settings), (FEEDBACK_BEFORE, FEEDBACK_AFTER)),
    ):
        for part, day in _partitions(folder):
            start = _day_start(day)
            end = start + timedelta(days=1)
            if end > sweep.cutoff[kind]:
                continue
            size = _tree_bytes(part)
            holders = _overlapping(windows, start, end, widen)
            if holders:
                sweep.keep(kind, part, size, start, "capture window of " + ", ".join(holders))
            else:
                sweep.remove(
                    kind, part, size, start, f"partition {day} older than {sweep.days[kind]:g} days"
                )


def _report_meta(folder: Path) -> tuple[datetime, dict[str, Any]]:
    """(creation time, window) of a report folder: its summary, else the stamp in its name,
    else the folder's mtime."""
    for name in (SUMMARY_FILE, "drift.json"):
        try:
            data = json.loads((folder / name).read_text())
            created = parse_utc(data.get("created"))
        except (OSError, ValueError, AttributeError):
            continue
        if created is not None:
            return created, data.get("window") or {}
    try:
        return datetime.strptime(folder.name[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC), {}
    except ValueError:
        return datetime.fromtimestamp(folder.stat().st_mtime, UTC), {}


def _sweep_reports(sweep: _Sweep, refs: References) -> list[Window]:
    """Expired reports go unless a version names them; returns the windows of every report a
    version names (their captures are kept too)."""
    root = reports_dir(sweep.settings)
    windows: list[Window] = []
    if not root.is_dir():
        return windows
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink()):
        created, window = _report_meta(folder)
        holders = refs.report_holders(folder.name, folder)
        span = window_of(window)
        if holders and span is not None:
            windows.append((*span, f"report {folder.name} of {', '.join(holders)}"))
        if created > sweep.cutoff[REPORTS]:
            continue
        size = _tree_bytes(folder)
        if holders:
            sweep.keep(REPORTS, folder, size, created, "named by " + ", ".join(holders))
        else:
            sweep.remove(REPORTS, folder, size, created, f"older than {sweep.days[REPORTS]:g} days")
    return windows


def _sweep_quarantine(sweep: _Sweep) -> None:
    root = sweep.settings.state / "rejected"
    if not root.is_dir():
        return
    for path in sorted(root.iterdir()):
        if path.is_symlink() or not path.is_file():
            continue
        when = datetime.fromtimestamp(path.stat().st_mtime, UTC)
        if when <= sweep.cutoff[QUARANTINE]:
            sweep.remove(
                QUARANTINE,
                path,
                path.stat().st_size,
                when,
                f"refused ingest's rows older than {sweep.days[QUARANTINE]:g} days",
            )


# ---- the schedule -----------------------------------------------------------------------------
HOUSEKEEPING_DEPLOYMENT = "housekeeping/housekeeping"


def ensure_housekeeping_schedule(settings: Settings, client: Any) -> bool:
    """Make the ``housekeeping`` deployment's schedule ``retention.schedule_cron`` (UTC), active
    unless ``retention.schedule_enabled`` is false (then paused, history kept); True when it
    changed. ``client``: a sync Prefect client. A missing deployment is logged and skipped."""
    from prefect.client.schemas.schedules import CronSchedule
    from prefect.exceptions import ObjectNotFound

    try:
        deployment = client.read_deployment_by_name(HOUSEKEEPING_DEPLOYMENT)
    except ObjectNotFound:
        logger.warning("no %s deployment: housekeeping schedule not set", HOUSEKEEPING_DEPLOYMENT)
        return False
    try:
        wanted = CronSchedule(cron=settings.retention.schedule_cron, timezone="UTC")
    except ValueError as exc:
        raise ConfigurationError(
            f"retention.schedule_cron {settings.retention.schedule_cron!r} is not a valid cron "
            f"expression: {str(exc).splitlines()[-1]}"
        ) from None
    enabled = settings.retention.schedule_enabled
    schedules = client.read_deployment_schedules(deployment.id)
    if not schedules:
        if not enabled:
            return False
        client.create_deployment_schedules(deployment.id, [(wanted, True)])
        return True
    changed = False
    for sched in schedules:
        same = getattr(sched.schedule, "cron", None) == wanted.cron
        if not same or sched.active != enabled:
            client.update_deployment_schedule(
                deployment.id, sched.id, active=enabled, schedule=wanted
            )
            changed = True
    return changed


# ---- entry point ------------------------------------------------------------------------------
def history_path(settings: Settings) -> Path:
    return settings.state / "housekeeping" / "runs.jsonl"


@contextlib.contextmanager
def _one_at_a_time(settings: Settings) -> Iterator[None]:
    lock = settings.state / "housekeeping" / "housekeeping.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConflictError(f"another housekeeping run holds {lock}") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def run_housekeeping(
    settings: Settings | None = None, dry_run: bool | None = None, now: datetime | None = None
) -> HousekeepingReport:
    """Apply ``settings.retention`` once (``dry_run`` None: the setting). Raises
    ServiceUnavailableError, having removed nothing, when MLflow cannot say what is referenced;
    ConflictError when another run is under way."""
    settings = settings or get_settings()
    dry = settings.retention.dry_run if dry_run is None else dry_run
    now = now or datetime.now(UTC)
    with _one_at_a_time(settings):
        refs = collect_references(settings)  # first: MLflow down means nothing is removed
        sweep = _Sweep(settings, now, dry)
        sweep.report.references = refs.summary()
        report_windows = _sweep_reports(sweep, refs)
        _sweep_captures(sweep, [*refs.windows, *report_windows])
        _sweep_quarantine(sweep)
        sweep_dvc_cache(sweep, refs.data_revs)
        report = sweep.report
        path = history_path(settings)
        with path.open("a") as out:
            out.write(json.dumps(report.to_dict(), default=str) + "\n")
    logger.info(
        "housekeeping%s: %d items (%s) %s, %d expired kept as referenced, %d errors",
        " (dry run)" if dry else "",
        len(report.removed),
        _size(report.bytes_removed),
        "to remove" if dry else "removed",
        len(report.kept),
        len(report.errors),
    )
    return report
