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


#: Logger trees whose records also go to the Prefect API inside a flow run, beside Prefect's own
#: ``get_run_logger()``: the library's INFO lines ("drift: 4/12 features drifted") are what a
#: user opening a flow run in the UI wants to read.
PREFECT_EXTRA_LOGGERS = ("driftloop",)


def prefect_logging_env(console_level: str = "WARNING") -> dict[str, str]:
    """Environment for a process that runs flows (the worker, its flow runs, the demo):
    Prefect's loggers stay at INFO, so flow and task logs reach the server (the UI's Logs
    tab), and only the console handler is raised to ``console_level``.

    ``PREFECT_LOGGING_LEVEL=WARNING`` would quiet the console too, but it is the level of the
    ``prefect`` logger itself: ``prefect.flow_runs`` and ``prefect.task_runs`` inherit it, so
    INFO records are dropped before the API handler sees them ("This run didn't generate
    logs"). Prefect's logging.yml lets the environment override any key of it
    (``PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL`` is ``handlers.console.level``)."""
    return {
        "PREFECT_LOGGING_LEVEL": "INFO",
        "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": console_level.upper(),
        # The root logger's level gates the extra loggers (they have none of their own); the
        # console handler above still shows only ``console_level`` and up.
        "PREFECT_LOGGING_ROOT_LEVEL": "INFO",
        "PREFECT_LOGGING_EXTRA_LOGGERS": ",".join(PREFECT_EXTRA_LOGGERS),
        # Library lines outside a flow run (worker start-up, imports) have no run to attach to.
        "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
    }


def quiet_console(level: str = "WARNING") -> None:
    """Raise every console (stream) handler of this process to ``level`` and leave the
    loggers' levels alone: records still reach non-stream handlers such as Prefect's API
    handler, so a flow run in this process keeps its logs in the Prefect UI."""
    value = getattr(logging, level.upper(), logging.WARNING)
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    for item in loggers:
        for handler in getattr(item, "handlers", []):
            if isinstance(handler, logging.StreamHandler) and not isinstance(
                handler, logging.FileHandler
            ):
                handler.setLevel(value)
