"""Flow-run names that say what a run does (``retrain 2013-02..2013-04 (drift: performance)``,
``monitor 2013-05 v3: drift``), instead of Prefect's random ``imposing-foxhound``.

Each ``*_run_name`` is given to ``@flow(flow_run_name=...)``. Prefect calls it with no
arguments when the run starts; the run's parameters come from :mod:`prefect.runtime`. A name
is a label, never a reason to fail: anything unexpected falls back to the flow's name.
:func:`rename_run` refines a name once the run knows more (the monitor's data months and
verdict).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import wraps
from typing import Any

from prefect.client.orchestration import get_client
from prefect.runtime import flow_run

from driftloop.registry.client import registry_snapshot
from driftloop.settings import get_settings

logger = logging.getLogger(__name__)

#: What a retrain's ``reason`` (the monitor verdict's text) says, by the alarm behind it.
ALARM_MARKERS = (
    ("estimated ROC AUC", "estimated performance"),
    ("observed ROC AUC", "performance"),
    ("calibration gap", "calibration"),
    ("drifted features hold", "feature drift"),
)
MAX_NAME = 120


def _parameters() -> dict[str, Any]:
    return dict(flow_run.parameters or {})


def _safe(fallback: str) -> Callable[[Callable[[dict[str, Any]], str]], Callable[[], str]]:
    def wrap(build: Callable[[dict[str, Any]], str]) -> Callable[[], str]:
        @wraps(build)
        def name() -> str:
            try:
                return " ".join(build(_parameters()).split())[:MAX_NAME] or fallback
            except Exception as exc:  # a label must not fail the run
                logger.warning("flow-run name of %s: %s", fallback, exc)
                return fallback

        return name

    return wrap


def month_span(start: str | None, end: str | None) -> str:
    """``2013-05`` for one month, ``2013-01..2013-03`` for several."""
    if not start and not end:
        return "newest months"
    if not start or not end or start == end:
        return str(start or end)
    return f"{start}..{end}"


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def time_span(start: str, end: str) -> str:
    """A window as short as it stays exact: ``2013-05-01..07`` (whole days of one month: the
    window [05-01, 05-08), its last day shown), ``2026-12-01 11:02..11:09`` (one day), else
    both ends in full (minutes)."""
    lo, hi = _parse(start), _parse(end)
    midnight = all((t.hour, t.minute, t.second) == (0, 0, 0) for t in (lo, hi))
    if midnight and hi - lo >= timedelta(days=1):
        hi -= timedelta(days=1)  # the end is exclusive: name the last whole day
        if (lo.year, lo.month) == (hi.year, hi.month):
            return f"{lo:%Y-%m-%d}..{hi:%d}"
        return f"{lo:%Y-%m-%d}..{hi:%Y-%m-%d}"
    if lo.date() == hi.date():
        return f"{lo:%Y-%m-%d %H:%M}..{hi:%H:%M}"
    return f"{lo:%Y-%m-%d %H:%M}..{hi:%Y-%m-%d %H:%M}"


def alarms_of(reason: str) -> list[str]:
    """The alarms a verdict's reason text names (``performance``, ``calibration`` ...)."""
    found: list[str] = []
    for marker, alarm in ALARM_MARKERS:
        if marker in reason and alarm not in found:
            found.append(alarm)
    return found


def trigger_of(source: str, reason: str) -> str:
    """What started a retrain: ``drift: performance``, ``weekly schedule``, ``manual: ...``."""
    if source.startswith("automation"):
        alarms = alarms_of(reason)
        return f"drift: {', '.join(alarms)}" if alarms else "drift"
    if source.startswith("schedule"):
        return f"{source.partition(':')[2] or 'scheduled'} schedule".lstrip()
    if reason:
        return f"{source or 'manual'}: {reason[:40]}"
    return source or "manual"


def retrain_name(
    start_month: str | None, end_month: str | None, source: str, reason: str, rollout: bool
) -> str:
    trigger = trigger_of(source or "manual", reason or "")
    extra = "" if rollout else ", no rollout"
    return f"retrain {month_span(start_month, end_month)} ({trigger}{extra})"


@_safe("retrain")
def retrain_run_name(p: dict[str, Any]) -> str:
    return retrain_name(
        p.get("start_month"),
        p.get("end_month"),
        str(p.get("source") or "manual"),
        str(p.get("reason") or ""),
        bool(p.get("rollout", True)),
    )


@_safe("monitor")
def monitor_run_name(p: dict[str, Any]) -> str:
    start, end = p.get("start"), p.get("end")
    if start and end:
        window = time_span(str(start), str(end))
    else:
        minutes = get_settings().monitoring.window_minutes
        window = f"last {minutes:g} min" + (f" to {end}" if end else "")
    version = f" v{p['model_version']}" if p.get("model_version") else ""
    return f"monitor {window}{version}"


def monitor_outcome_name(result: Any) -> str:
    """The monitor run once judged: data months, judged version and verdict, e.g.
    ``monitor 2013-05 v3: quality (2026-12-01 11:02..11:09)``, or
    ``monitor v5: insufficient data (…)`` when the window held no captured rows."""
    months = list(result.months or [])
    data = f"{month_span(months[0], months[-1])} " if months else ""
    verdict = str(result.verdict.status).replace("_", " ")
    return (
        f"monitor {data}v{result.model_version}: {verdict} "
        f"({time_span(str(result.start), str(result.end))})"
    )


@_safe("rollout")
def rollout_run_name(p: dict[str, Any]) -> str:
    settings = get_settings()
    weight = p.get("weight")
    weight = settings.rollout.canary_weight if weight is None else weight
    try:  # one registry call: the challenger and the mode the registry routes by
        snap = registry_snapshot(settings)
        challenger, mode = snap.challenger, snap.mode
    except Exception:  # the registry may be down: the flow itself will say so
        challenger, mode = None, None
    who = f"v{challenger} " if challenger is not None else ""
    # In shadow mode the champion answers every request and the weight is the share copied to
    # the challenger: "canary 100%" would read as the challenger answering everyone. The
    # registry's mode (`driftloop rollout mode`) overrides the setting, as serving does.
    shadow = (mode or settings.serving.mode) == "shadow"
    return f"rollout {who}{'shadow' if shadow else 'canary'} {weight}%"


@_safe("ingest")
def ingest_run_name(p: dict[str, Any]) -> str:
    return f"ingest {month_span(p.get('start_month', '2013-01'), p.get('end_month', '2013-03'))}"


@_safe("features")
def features_run_name(p: dict[str, Any]) -> str:
    months = p.get("months")
    what = month_span(months[0], months[-1]) if months else "all ingested months"
    until = p.get("until")
    return f"features {what}" + (f", online store until {str(until)[:16]}" if until else "")


@_safe("train")
def train_run_name(p: dict[str, Any]) -> str:
    window = month_span(p.get("start_month", "2013-01"), p.get("end_month", "2013-03"))
    notes = [
        note
        for flag, note in (("use_best_params", "tuned params"), ("resume", "resumed"))
        if p.get(flag)
    ]
    return f"train {window}" + (f" ({', '.join(notes)})" if notes else "")


@_safe("evaluate")
def evaluate_run_name(p: dict[str, Any]) -> str:
    return f"evaluate + gate run {str(p.get('run_id', ''))[:8]}"


@_safe("tune")
def tune_run_name(p: dict[str, Any]) -> str:
    window = month_span(p.get("start_month", "2013-01"), p.get("end_month", "2013-03"))
    study = f", study {p['study_name']}" if p.get("study_name") else ""
    return f"tune {window} ({p.get('trials', 10)} trials{study})"


@_safe("housekeeping")
def housekeeping_run_name(p: dict[str, Any]) -> str:
    dry_run = p.get("dry_run")
    if dry_run is None:
        dry_run = get_settings().retention.dry_run
    return "housekeeping (dry run)" if dry_run else "housekeeping"


def rename_run(name: str) -> None:
    """Rename the current flow run (best effort: a failure is logged, the run goes on)."""
    try:
        run_id = flow_run.id
        if not run_id:
            return
        with get_client(sync_client=True) as client:
            client.set_flow_run_name(uuid.UUID(str(run_id)), " ".join(name.split())[:MAX_NAME])
    except Exception as exc:
        logger.warning("could not rename flow run to %r: %s", name, exc)
