"""``python -m serving``: the inference API on settings.serving.host/port (uvicorn, one worker,
access log off: it costs ~20 % throughput; requests are in the inference log and /metrics)."""

from __future__ import annotations

import logging
import os
import sys

import uvicorn

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
    settings = get_settings()
    logging.basicConfig(
        level=getattr(logging, settings.log_level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("alembic", "urllib3", "httpx", "git", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    run(settings)


if __name__ == "__main__":
    main()
