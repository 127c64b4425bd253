"""Polling helpers of the closed-loop tests (real Prefect server)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

#: Events that only the tests' sentinel automation matches (see :func:`wait_until_evaluated`).
SENTINEL_EVENT = "driftloop.test.sentinel"
#: What the Prefect server emits each time an automation's trigger fires.
AUTOMATION_TRIGGERED = "prefect.automation.triggered"


def flow_runs_of(deployment_id: str) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    with get_client(sync_client=True) as client:
        return client.read_flow_runs(
            deployment_filter=DeploymentFilter(
                id=DeploymentFilterId(any_=[uuid.UUID(deployment_id)])
            )
        )


def firings(event_ids: list[str]) -> dict[str, list[str]]:
    """For each of ``event_ids``: the ids of the automations that fired on it, from the
    ``prefect.automation.triggered`` events the server stored (they name the triggering event)."""
    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventNameFilter, EventRelatedFilter

    wanted = {f"prefect.event.{event_id}": event_id for event_id in event_ids}
    query = EventFilter(
        event=EventNameFilter(name=[AUTOMATION_TRIGGERED]),
        related=EventRelatedFilter(id=list(wanted), role=["triggering-event"]),
    )
    with get_client(sync_client=True) as client:
        page = client.read_events(query, limit=50)
    fired: dict[str, list[str]] = {event_id: [] for event_id in event_ids}
    for event in page.events:
        for related in event.related:
            if related.role == "triggering-event" and related.id in wanted:
                automation = event.resource.id.removeprefix("prefect.automation.")
                fired[wanted[related.id]].append(automation)
    return fired


def post_sentinel(prefect_url: str, follows: str) -> str:
    """Post a sentinel event that ``follows`` the event of that id; returns its id."""
    from prefect.events import Event

    sentinel = uuid.uuid4()
    event = Event(
        event=SENTINEL_EVENT,
        resource={"prefect.resource.id": f"{SENTINEL_EVENT}.{sentinel}"},
        id=sentinel,
        follows=uuid.UUID(follows),
    )
    response = httpx.post(
        f"{prefect_url.rstrip('/')}/events", json=[event.model_dump(mode="json")], timeout=10.0
    )
    response.raise_for_status()
    return str(sentinel)


def wait_until_evaluated(prefect_url: str, event_ids: list[str], sentinel_automation: str) -> None:
    """Wait until the Prefect server's triggers service has evaluated each of ``event_ids``
    against every automation (whether or not one fired).

    The positive signal: for each event, a sentinel event that ``follows`` it fires the sentinel
    automation. The server evaluates an event that follows another only after that one has
    been evaluated (its causal ordering), and an automation that fires publishes its
    ``prefect.automation.triggered`` event within that evaluation, ahead of the sentinel's; the
    server stores events in the order published, so once the sentinels' firings are stored, any
    firing on the events they follow is stored too (``firings`` finds it).
    """
    from polling import wait_for

    sentinels = [post_sentinel(prefect_url, event_id) for event_id in event_ids]
    wait_for(
        lambda: all(sentinel_automation in fired for fired in firings(sentinels).values()),
        timeout=60,
        what=f"the sentinel automation to fire after events {event_ids}",
        every=0.5,
    )
