"""Notifications of the closed loop: Prefect automations that post to a webhook when the loop
needs a person's eye, declared in the repo like the retrain automation.

With ``monitoring.notify_webhook_url`` set, :func:`ensure_notifications` (called by
:func:`driftloop.loop.automations.ensure_automations`, i.e. ``driftloop up`` and the deploy
hook) makes the Prefect server hold, per registered model:

* one Custom Webhook notification block, ``driftloop-notify-<model>``, whose URL is kept in the
  block's secrets (masked in the UI; a Slack / Teams / Mattermost incoming webhook URL is a
  credential) and which posts ``{"text": ..., "subject": ..., "body": ...}``;
* three automations that send through it:

  - ``driftloop: notify <model> drift``: event ``driftloop.drift.detected`` of the model (the
    monitor asked for a retrain; the message has the reason and the retrain window);
  - ``driftloop: notify <model> failed retrain``: a ``retrain`` flow run Failed or Crashed;
  - ``driftloop: notify <model> rollback``: event ``driftloop.rollout.rolled-back`` of the model
    (:data:`ROLLBACK_EVENT`; a rollback of the canary, with its reason).

Without the setting there is no block and no notification automation (existing ones are
removed), so unsetting it stops the messages. Idempotent like the retrain automation: a spec
hash in each description; unchanged ones are left alone.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any

from driftloop.loop.events import DRIFT_EVENT, model_resource_id
from driftloop.loop.upsert import upsert_automation
from driftloop.settings import Settings

logger = logging.getLogger(__name__)

#: What a rollback of the canary emits (resource: the model), with ``reason`` and ``version``.
ROLLBACK_EVENT = "driftloop.rollout.rolled-back"
#: The flow whose failed or crashed runs are notified.
RETRAIN_FLOW = "retrain"
FAILED_RUN_EVENTS = ("prefect.flow-run.Failed", "prefect.flow-run.Crashed")
#: The webhook's JSON body ({{subject}}, {{body}} filled by Prefect; "text" is what Slack,
#: Mattermost and most chat webhooks show).
WEBHOOK_JSON = {"text": "{{subject}}\n{{body}}", "subject": "{{subject}}", "body": "{{body}}"}
URL_SECRET = "webhook_url"


@dataclass(frozen=True)
class Notice:
    """One notification automation: what fires it and the message."""

    kind: str
    description: str
    expect: tuple[str, ...]
    match: dict[str, str]
    match_related: dict[str, str] | None
    subject: str
    body: str


def block_name(settings: Settings) -> str:
    """The notification block's name (Prefect block names: lower case, digits and dashes)."""
    model = "".join(c if c.isalnum() else "-" for c in settings.mlflow.registered_model.lower())
    return f"driftloop-notify-{model}"


def notification_name(settings: Settings, kind: str) -> str:
    return f"driftloop: notify {settings.mlflow.registered_model} {kind}"


def notices(settings: Settings) -> list[Notice]:
    """The three notification automations of ``settings``' model."""
    model = settings.mlflow.registered_model
    resource = model_resource_id(model)
    return [
        Notice(
            kind="drift",
            description=f"When the monitor finds drift that calls for a retrain of {model} "
            f"(event {DRIFT_EVENT}), post its reason to the webhook.",
            expect=(DRIFT_EVENT,),
            match={"prefect.resource.id": resource},
            match_related=None,
            subject=f"driftloop: drift on {model}",
            body="{{ event.payload.reason }}\nversion {{ event.payload.model_version }}, window "
            "{{ event.payload.window_start }}..{{ event.payload.window_end }}; retrain on "
            "{{ event.payload.start_month }}..{{ event.payload.end_month }} requested.",
        ),
        Notice(
            kind="failed retrain",
            description=f"When a run of the {RETRAIN_FLOW} flow fails or crashes, post it to "
            "the webhook.",
            expect=FAILED_RUN_EVENTS,
            match={"prefect.resource.id": "prefect.flow-run.*"},
            match_related={"prefect.resource.role": "flow", "prefect.resource.name": RETRAIN_FLOW},
            subject=f"driftloop: retrain of {model} failed",
            body="flow run {{ event.resource['prefect.resource.name'] }}: {{ event.event }} "
            "(driftloop retrain list; the Prefect UI has its logs)",
        ),
        Notice(
            kind="rollback",
            description=f"When the canary of {model} is rolled back (event {ROLLBACK_EVENT}), "
            "post the reason to the webhook.",
            expect=(ROLLBACK_EVENT,),
            match={"prefect.resource.id": resource},
            match_related=None,
            subject=f"driftloop: canary of {model} rolled back",
            body="version {{ event.payload.version }}: {{ event.payload.reason }}",
        ),
    ]


def _digest(notice: Notice, block_id: str) -> str:
    spec = {**notice.__dict__, "block": block_id}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def build_notification(settings: Settings, notice: Notice, block_id: str) -> Any:
    """The automation object of ``notice`` sending through block ``block_id``."""
    from prefect.automations import Automation, EventTrigger, Posture, SendNotification

    return Automation(
        name=notification_name(settings, notice.kind),
        description=f"{notice.description} Declared in platform/driftloop/loop/notifications.py "
        f"(webhook: monitoring.notify_webhook_url). spec sha256:{_digest(notice, block_id)}",
        enabled=True,
        trigger=EventTrigger(
            expect=set(notice.expect),
            match=notice.match,
            match_related=notice.match_related or {},
            posture=Posture.Reactive,
            threshold=1,
        ),
        actions=[
            SendNotification(block_document_id=block_id, subject=notice.subject, body=notice.body)
        ],
    )


def _save_block(settings: Settings, url: str) -> str:
    """Create or update the webhook block; returns its block document id."""
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    block = CustomWebhookNotificationBlock(
        name=block_name(settings),
        url="{{" + URL_SECRET + "}}",
        json_data=dict(WEBHOOK_JSON),
        secrets={URL_SECRET: url},  # pydantic makes it a SecretDict
    )
    return str(block.save(block_name(settings), overwrite=True))


def _remove(client: Any, settings: Settings) -> list[str]:
    from prefect.exceptions import ObjectNotFound

    done = []
    for notice in notices(settings):
        for found in client.read_automations_by_name(notification_name(settings, notice.kind)):
            client.delete_automation(found.id)
            done.append(f"removed {found.name} (no monitoring.notify_webhook_url)")
    try:
        document = client.read_block_document_by_name(block_name(settings), "custom-webhook")
    except ObjectNotFound:
        return done
    client.delete_block_document(document.id)
    done.append(f"removed block {block_name(settings)}")
    return done


def ensure_notifications(settings: Settings, client: Any) -> list[str]:
    """Make the server hold the notification block and automations of ``settings`` (none when
    ``monitoring.notify_webhook_url`` is unset); ``client``: a sync Prefect client for the same
    server. Returns what was done."""
    secret = settings.monitoring.notify_webhook_url
    if secret is None:
        return _remove(client, settings)
    block_id = _save_block(settings, secret.get_secret_value())
    done = []
    for notice in notices(settings):
        done += upsert_automation(client, build_notification(settings, notice, block_id))
    return done


def read_notifications(settings: Settings, client: Any) -> dict[str, Any]:
    """The notification automations the server holds for ``settings``' model, by kind."""
    found = {}
    for notice in notices(settings):
        hits = client.read_automations_by_name(notification_name(settings, notice.kind))
        if hits:
            found[notice.kind] = hits[0]
    return found


def emit_rollback(version: str | None, reason: str, settings: Settings) -> str | None:
    """Tell Prefect that the canary of ``settings``' model was rolled back
    (:data:`ROLLBACK_EVENT`, which the rollback notification matches); returns the event id.
    Best effort: the rollback is done and audited already, so a Prefect outage is logged, not
    raised. Nothing is sent (None) without ``monitoring.notify_webhook_url``."""
    # lazy: the trigger module imports the monitor's dependencies, which automations avoid
    from driftloop.loop.trigger import emit_event

    if settings.monitoring.notify_webhook_url is None:
        return None  # no notification automation listens: no call to Prefect
    payload = {"version": version, "reason": reason[:500]}
    try:
        return emit_event(ROLLBACK_EVENT, settings.mlflow.registered_model, payload, settings)
    except Exception as exc:
        logger.warning("rollback event not sent: %s", exc)
        return None
