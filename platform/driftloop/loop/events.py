"""The closed loop's Prefect events and resources: what the monitor emits and the automation
matches (names only, so the automation module does not import the monitor's dependencies)."""

from __future__ import annotations

DRIFT_EVENT = "driftloop.drift.detected"
SUPPRESSED_EVENT = "driftloop.drift.suppressed"
RESOURCE_PREFIX = "driftloop.model."


def model_resource_id(model: str) -> str:
    """The Prefect resource id of a registered model (what the automation matches)."""
    return f"{RESOURCE_PREFIX}{model}"
