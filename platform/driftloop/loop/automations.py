"""The closed loop's Prefect automation and schedules, declared in the repo.

``ensure_automations(settings)`` (called by ``driftloop up`` / deploy after the deployments are
registered) makes the server hold exactly one automation per registered model, found by name:

    when   event "driftloop.drift.detected" for resource "driftloop.model.<name>"
           (reactive, threshold 1, within = monitoring.retrain_cooldown_minutes: an event inside
           the cooldown after a firing starts nothing)
    do     run deployment "retrain/retrain" with start_month / end_month / reason templated
           from the event payload (Jinja), source "automation:<event id>"

and sets the ``monitor`` deployment's interval schedule to ``monitoring.schedule_minutes``.
With ``monitoring.notify_webhook_url`` set it also declares the webhook notifications on
drift, a failed retrain and a rollback (:mod:`driftloop.loop.notifications`).
Idempotent: an automation whose spec (hashed into its description) is unchanged is left alone;
a changed one is updated in place; duplicates by name are removed.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from driftloop.errors import NotFoundError, ServiceUnavailableError
from driftloop.loop.events import DRIFT_EVENT, model_resource_id
from driftloop.loop.housekeeping import ensure_housekeeping_schedule
from driftloop.loop.notifications import ensure_notifications
from driftloop.loop.upsert import upsert_automation
from driftloop.settings import Settings, get_settings, prefect_auth_string

logger = logging.getLogger(__name__)

RETRAIN_DEPLOYMENT = "retrain/retrain"
MONITOR_DEPLOYMENT = "monitor/monitor"
#: Parameters of the retrain run, rendered by the Prefect server from the triggering event.
RETRAIN_PARAMETERS = {
    "start_month": "{{ event.payload.start_month }}",
    "end_month": "{{ event.payload.end_month }}",
    "reason": "{{ event.payload.reason }}",
    "source": "automation:{{ event.id }}",
}


def automation_name(settings: Settings) -> str:
    return f"driftloop: retrain {settings.mlflow.registered_model} on drift"


@contextmanager
def prefect_client(settings: Settings) -> Iterator[Any]:
    """A sync Prefect client for the configured server."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

    updates: dict[Any, Any] = {PREFECT_API_URL: settings.prefect.url}
    auth = prefect_auth_string(settings)
    if auth:
        updates[PREFECT_API_AUTH_STRING] = auth
    with (
        temporary_settings(updates=updates),
        get_client(sync_client=True) as client,
    ):
        yield client


def _spec(settings: Settings, deployment_id: str) -> dict[str, Any]:
    return {
        "event": DRIFT_EVENT,
        "resource": model_resource_id(settings.mlflow.registered_model),
        "within_s": int(settings.monitoring.retrain_cooldown_minutes * 60),
        "deployment_id": deployment_id,
        "parameters": RETRAIN_PARAMETERS,
    }


def describe_automation(settings: Settings) -> str:
    """What the Prefect UI shows under the automation (its trigger reads only "A custom
    trigger"): what fires it, the monitor's rule behind the event, and the guards with the
    values in force."""
    m, k = settings.monitoring, settings.kpi
    model = settings.mlflow.registered_model
    return (
        f"Runs the {RETRAIN_DEPLOYMENT} deployment when the monitor emits {DRIFT_EVENT} for "
        f"model {model} (resource {model_resource_id(model)}); at most one run per "
        f"{m.retrain_cooldown_minutes:g} min (monitoring.retrain_cooldown_minutes). "
        f"The monitor emits it only on an alarm in a window of at least {m.min_rows} rows: ROC "
        f"AUC's {1 - m.alpha:.0%} interval wholly below the KPI (the larger of kpi.min_auc "
        f"{k.min_auc:g} and the version's holdout AUC - kpi.max_auc_drop {k.max_auc_drop:g}; "
        f"observed on at least "
        f"{m.min_labeled_rows} labels, else estimated), a calibration gap beyond "
        f"±{k.max_calibration_gap:g}, or drifted features holding at least "
        f"{m.importance_drift_threshold:.0%} of the permutation importance (the plain drift "
        f"share is reported, not acted on). Guards before it emits: cooldown "
        f"{m.retrain_cooldown_minutes:g} min since the model's last retrain, budget "
        f"{m.daily_retrain_budget} retrains a day, a window already retrained is not "
        f"retrained again; a refused alarm is emitted as driftloop.drift.suppressed with the "
        f"reason. The run trains on the event's start_month..end_month "
        f"({m.retrain_window_months} months before the drifted one, which is held out for "
        f"the gate), source automation:<event id>. Declared in "
        f"platform/driftloop/loop/automations.py."
    )


def build_automation(settings: Settings, deployment_id: str) -> Any:
    """The automation object (not yet on the server)."""
    from prefect.automations import Automation, EventTrigger, Posture, RunDeployment

    spec = _spec(settings, deployment_id)
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]
    return Automation(
        name=automation_name(settings),
        description=f"{describe_automation(settings)} spec sha256:{digest}",
        enabled=True,
        trigger=EventTrigger(
            expect={DRIFT_EVENT},
            match={"prefect.resource.id": spec["resource"]},
            for_each={"prefect.resource.id"},
            posture=Posture.Reactive,
            threshold=1,
            within=timedelta(seconds=spec["within_s"]),
        ),
        actions=[
            RunDeployment(
                source="selected",
                deployment_id=deployment_id,
                parameters=dict(RETRAIN_PARAMETERS),
            )
        ],
    )


def _deployment_id(client: Any, name: str) -> str:
    from prefect.exceptions import ObjectNotFound

    try:
        return str(client.read_deployment_by_name(name).id)
    except ObjectNotFound:
        raise NotFoundError(
            f"Prefect deployment {name!r} does not exist: register the deployments first "
            "(`driftloop up` runs `prefect deploy --all` with prefect.yaml)"
        ) from None


def ensure_monitor_schedule(settings: Settings, client: Any) -> bool:
    """Set the monitor deployment's interval to ``monitoring.schedule_minutes``; True when
    it changed. A missing monitor deployment is logged and skipped."""
    from prefect.client.schemas.schedules import IntervalSchedule
    from prefect.exceptions import ObjectNotFound

    try:
        deployment = client.read_deployment_by_name(MONITOR_DEPLOYMENT)
    except ObjectNotFound:
        logger.warning("no %s deployment: monitoring schedule not set", MONITOR_DEPLOYMENT)
        return False
    interval = timedelta(minutes=settings.monitoring.schedule_minutes)
    schedules = client.read_deployment_schedules(deployment.id)
    if not settings.monitoring.schedule_enabled:
        active = [s for s in schedules if s.active]
        for sched in active:  # another scheduler runs the monitor: pause ours, keep its history
            client.update_deployment_schedule(deployment.id, sched.id, active=False)
        return bool(active)
    if not schedules:
        client.create_deployment_schedules(
            deployment.id, [(IntervalSchedule(interval=interval), True)]
        )
        return True
    changed = False
    for sched in schedules:
        current = getattr(sched.schedule, "interval", None)
        if current != interval or not sched.active:
            client.update_deployment_schedule(
                deployment.id, sched.id, active=True, schedule=IntervalSchedule(interval=interval)
            )
            changed = True
    return changed


def ensure_automations(
    settings: Settings | None = None, retrain_deployment: str = RETRAIN_DEPLOYMENT
) -> list[str]:
    """Create or update the closed loop's automation; returns what was done, e.g.
    ``["created driftloop: retrain flight-delay on drift"]`` (empty when all was in place)."""
    settings = settings or get_settings()
    done: list[str] = []
    try:
        with prefect_client(settings) as client:
            deployment_id = _deployment_id(client, retrain_deployment)
            wanted = build_automation(settings, deployment_id)
            done += upsert_automation(client, wanted)
            if ensure_monitor_schedule(settings, client):
                done.append(
                    f"monitor schedule every {settings.monitoring.schedule_minutes} min"
                    if settings.monitoring.schedule_enabled
                    else "monitor schedule paused (monitoring.schedule_enabled=false)"
                )
            if ensure_housekeeping_schedule(settings, client):
                done.append(
                    f"housekeeping schedule {settings.retention.schedule_cron} UTC"
                    if settings.retention.schedule_enabled
                    else "housekeeping schedule paused (retention.schedule_enabled=false)"
                )
            done.extend(ensure_notifications(settings, client))
    except (NotFoundError, ServiceUnavailableError):
        raise
    except Exception as exc:
        if "connect" in str(exc).lower() or type(exc).__name__.endswith("ConnectError"):
            raise ServiceUnavailableError(
                f"Prefect is unreachable at {settings.prefect.url}: {exc}"
            ) from None
        raise
    for line in done:
        logger.info("automations: %s", line)
    return done


def read_automation(settings: Settings | None = None) -> Any | None:
    """The closed loop's automation as the server holds it (None when absent)."""
    settings = settings or get_settings()
    with prefect_client(settings) as client:
        found = client.read_automations_by_name(automation_name(settings))
    return found[0] if found else None
