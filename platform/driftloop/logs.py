"""Logging is configured here, once per process, by the entry points (the ``driftloop`` CLI, the
inference server ``python -m serving``, the torchrun trainer); library modules only call
``logging.getLogger(__name__)``."""

from __future__ import annotations

import logging
import sys

#: One line per record, to stderr (stdout stays for command output).
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: Libraries whose INFO lines say nothing a user acts on.
NOISY = ("alembic", "urllib3", "httpx", "git", "filelock", "numexpr")


def configure_logging(level: str = "INFO", fmt: str = FORMAT) -> None:
    """Root handler at ``level`` (a name such as ``"INFO"``; unknown names mean INFO)."""
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO), format=fmt, stream=sys.stderr
    )
    for noisy in NOISY:
        logging.getLogger(noisy).setLevel(logging.WARNING)
