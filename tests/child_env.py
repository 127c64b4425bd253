"""The environment of a child process (a worker, a flow run, the demo's first steps) that makes
its ``get_settings()`` equal a test's settings."""

from __future__ import annotations

import json
from typing import Any


def settings_env(settings: Any) -> dict[str, str]:
    """Environment that makes get_settings() in a child process equal ``settings``."""
    from driftloop.embedded.services import service_env

    env = service_env(settings)
    for section in ("mlflow", "training", "rollout", "monitoring", "features"):
        data = getattr(settings, section).model_dump(mode="json")
        for key, value in data.items():
            if value is None:
                continue
            text = json.dumps(value) if isinstance(value, list | dict) else str(value)
            env[f"DRIFTLOOP_{section.upper()}__{key.upper()}"] = text
    env["PREFECT_HOME"] = str(settings.state / "prefect-home")
    env["PREFECT_WORKER_QUERY_SECONDS"] = "1"
    env["PREFECT_WORKER_PREFETCH_SECONDS"] = "1"
    return env
