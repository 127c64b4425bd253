"""Declare a Prefect automation idempotently: shared by the retrain automation
(:mod:`driftloop.loop.automations`) and the notifications (:mod:`driftloop.loop.notifications`),
in a module of its own so that neither imports the other."""

from __future__ import annotations

from typing import Any


def upsert_automation(client: Any, wanted: Any) -> list[str]:
    """Make the server hold exactly one automation named like ``wanted`` (an Automation),
    equal to it: created when missing, updated when its description (which carries the spec's
    hash) differs or it was disabled, duplicates by name removed. Returns what was done."""
    from prefect.events.schemas.automations import AutomationCore  # lazy: Prefect start-up

    done = []
    existing = client.read_automations_by_name(wanted.name)
    for extra in existing[1:]:
        client.delete_automation(extra.id)
        done.append(f"removed duplicate {extra.id}")
    if not existing:
        client.create_automation(AutomationCore(**wanted.model_dump(exclude={"id"})))
        done.append(f"created {wanted.name}")
    elif existing[0].description != wanted.description or not existing[0].enabled:
        update = AutomationCore(**wanted.model_dump(exclude={"id", "owner_resource"}))
        client.update_automation(existing[0].id, update)
        done.append(f"updated {wanted.name}")
    return done
