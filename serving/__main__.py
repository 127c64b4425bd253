"""``python -m serving``: the inference API on settings.serving.host/port (uvicorn, one worker,
access log off: it costs ~20 % throughput; requests are in the inference log and /metrics)."""

from __future__ import annotations

import os
import sys

import uvicorn

from driftloop.errors import DriftloopError
from driftloop.logs import configure_logging
from driftloop.settings import Settings, get_settings
from serving.app import create_app


def run(settings: Settings) -> None:
    """Serve ``settings`` in the foreground until interrupted (``driftloop serve`` uses it)."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    uvicorn.run(
        create_app(settings),
        host=settings.serving.host,
        port=settings.serving.port,
        workers=1,
        access_log=False,
        log_level=settings.log_level.lower(),
    )


def main() -> None:
    try:
        settings = get_settings()
        configure_logging(settings.log_level)
        run(settings)
    except (DriftloopError, ValueError) as exc:  # settings refused: one readable line
        sys.stderr.write(f"error: {str(exc).splitlines()[0]}\n")
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
