"""The monitor's verdict -> Prefect event: ``driftloop.drift.detected`` when the guards of
:mod:`driftloop.loop.ledger` allow a retrain, ``driftloop.drift.suppressed`` (with the reason)
when they do not; and the retrain window used when none is given."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from driftloop.data.capture import read_predictions
from driftloop.data.store import available_months
from driftloop.errors import InvalidInputError, NotFoundError, ServiceUnavailableError
from driftloop.loop.events import DRIFT_EVENT, SUPPRESSED_EVENT, model_resource_id
from driftloop.loop.ledger import GuardDecision, RetrainRecord, check_guards, claim_retrain
from driftloop.monitoring.monitor import retrain_window, window_months
from driftloop.months import month_range, next_month, parse_month, shift_month
from driftloop.settings import Settings, get_settings, prefect_basic_auth

logger = logging.getLogger(__name__)


def emit_event(
    event: str,
    model: str,
    payload: dict[str, Any],
    settings: Settings | None = None,
    related: list[dict[str, str]] | None = None,
) -> str:
    """Post one event to the Prefect server's events API (synchronously, so it is delivered
    before this returns); returns the event id."""
    from prefect.events import Event

    settings = settings or get_settings()
    resource = {"prefect.resource.id": model_resource_id(model), "prefect.resource.name": model}
    evt = Event(
        event=event,
        resource=resource,
        related=related or [],
        payload=payload,
        occurred=datetime.now(UTC),
    )
    url = f"{settings.prefect.url.rstrip('/')}/events"
    try:
        response = httpx.post(
            url,
            json=[evt.model_dump(mode="json")],
            auth=prefect_basic_auth(settings),
            timeout=10.0,
        )
    except httpx.HTTPError as exc:
        raise ServiceUnavailableError(
            f"Prefect is unreachable at {settings.prefect.url} ({type(exc).__name__}): "
            "start it with `driftloop up` or set DRIFTLOOP_PREFECT__API_URL"
        ) from None
    if response.status_code >= 300:
        raise ServiceUnavailableError(
            f"Prefect refused event {event}: HTTP {response.status_code} {response.text[:200]}"
        )
    logger.info("emitted %s for %s (%s)", event, model, evt.id)
    return str(evt.id)


def _flow_run_related() -> list[dict[str, str]]:
    """The current Prefect flow run as a related resource (links the event in the UI)."""
    try:
        from prefect.runtime import flow_run

        run_id = flow_run.id
    except Exception:
        return []
    if not run_id:
        return []
    return [
        {
            "prefect.resource.id": f"prefect.flow-run.{run_id}",
            "prefect.resource.role": "flow-run",
        }
    ]


@dataclass
class TriggerDecision:
    """What the monitor did about a verdict: ``retrain_requested`` when the drift event went out
    (``event`` names the event sent, or that would be sent with ``emit=False``)."""

    retrain_requested: bool
    event: str | None
    event_id: str | None
    reason: str
    payload: dict[str, Any] = field(default_factory=dict)


def trigger_retrain(
    result: Any, settings: Settings | None = None, emit: bool = True
) -> TriggerDecision:
    """Given a :class:`~driftloop.monitoring.monitor.MonitorResult`: when its verdict calls for
    a retrain and the guards allow it, emit ``driftloop.drift.detected`` with the retrain window
    in the payload (the automation runs the ``retrain`` deployment with it); when the guards
    refuse, emit ``driftloop.drift.suppressed`` instead."""
    settings = settings or get_settings()
    verdict = result.verdict
    if not verdict.retrain:
        return TriggerDecision(False, None, None, f"no alarm ({verdict.status})")
    window = result.retrain_window
    if not window:
        return TriggerDecision(False, None, None, "alarm, but no month to retrain on")
    try:  # the window the retrain will claim: clamped to data that exists
        window = clamp_window(window["start_month"], window["end_month"], settings)
    except InvalidInputError as exc:
        return TriggerDecision(False, None, None, f"alarm, but {exc}")
    payload = {
        **window,
        "model_version": result.model_version,
        "status": verdict.status,
        "alarms": verdict.alarms,
        "reason": verdict.reason[:500],
        "drift_share": result.drift_share,
        "live_auc": result.live_auc,
        "window_start": result.start,
        "window_end": result.end,
        "months": result.months,
        "report": result.report.id if result.report else None,
    }
    guard = check_guards(window["start_month"], window["end_month"], settings, result.model_name)
    event = DRIFT_EVENT if guard.allowed else SUPPRESSED_EVENT
    if not guard.allowed:
        payload["suppressed"] = guard.reason
    if not emit:
        return TriggerDecision(False, event, None, guard.reason, payload)
    event_id = emit_event(event, result.model_name, payload, settings, _flow_run_related())
    return TriggerDecision(guard.allowed, event, event_id, guard.reason, payload)


# ---- retrain window when none is given (weekly schedule, manual runs) ----------------------
def default_retrain_window(settings: Settings | None = None) -> dict[str, str]:
    """The window a retrain without parameters uses: the newest data month seen in the last
    week of captured traffic, else the newest ingested month, is held out; the
    ``retrain_window_months`` before it are trained on."""
    settings = settings or get_settings()
    newest: str | None = None
    try:
        recent = read_predictions(
            settings, start=datetime.now(UTC) - timedelta(days=7), with_labels=False
        )
        months = window_months(recent)
        newest = months[-1] if months else None
    except (OSError, ValueError, KeyError) as exc:
        logger.warning("could not read the capture for a default window: %s", exc)
    if newest is None:
        ingested = available_months(settings)
        if not ingested:
            raise NotFoundError(
                "no captured traffic and no ingested month: give start_month and end_month"
            )
        newest = ingested[-1]
    return retrain_window(newest, settings)


# ---- the window a retrain may claim ----------------------------------------------------------
def data_months(settings: Settings | None = None) -> tuple[str, str]:
    """First and last month of data that exists: ``data.first_month..data.last_month`` (what
    ingestion can read), widened by what the data repo already holds."""
    settings = settings or get_settings()
    first, last = parse_month(settings.data.first_month), parse_month(settings.data.last_month)
    try:
        held = available_months(settings)
    except (OSError, ValueError) as exc:
        logger.warning("could not list the data repo's months: %s", exc)
        held = []
    if held:
        first, last = min(first, held[0]), max(last, held[-1])
    return first, last


def clamp_window(
    start_month: str, end_month: str, settings: Settings | None = None
) -> dict[str, str]:
    """``start_month..end_month`` clamped to data that exists (:func:`data_months`), keeping a
    holdout month after it. InvalidInputError for a malformed or reversed window, or one that
    holds no month to train on with a holdout after it."""
    settings = settings or get_settings()
    start, end = parse_month(start_month), parse_month(end_month)
    month_range(start, end)  # a reversed range fails here
    first, last = data_months(settings)
    clamped_start, clamped_end = max(start, first), min(end, shift_month(last, -1))
    if clamped_end < clamped_start:
        raise InvalidInputError(
            f"retrain window {start}..{end} holds no data to train on with a holdout month after "
            f"it (data exists for {first}..{last})"
        )
    if (clamped_start, clamped_end) != (start, end):
        logger.info(
            "retrain window %s..%s clamped to %s..%s (data %s..%s)",
            start,
            end,
            clamped_start,
            clamped_end,
            first,
            last,
        )
    return {
        "start_month": clamped_start,
        "end_month": clamped_end,
        "holdout_month": next_month(clamped_end),
    }


def claim_window(
    start_month: str,
    end_month: str,
    settings: Settings | None = None,
    reason: str = "",
    source: str = "",
    force: bool = False,
) -> tuple[dict[str, str], RetrainRecord, GuardDecision]:
    """Clamp the window to data that exists, THEN claim it in the ledger (cooldown, budget,
    de-duplication): a window that cannot be trained on fails before it takes the cooldown
    and the budget of the next legitimate retrain. Returns (window, record, decision)."""
    settings = settings or get_settings()
    window = clamp_window(start_month, end_month, settings)
    record, decision = claim_retrain(
        window["start_month"],
        window["end_month"],
        settings,
        reason=reason,
        source=source,
        force=force,
    )
    return window, record, decision
