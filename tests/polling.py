"""Polling helper shared by the integration and e2e tests (``tests/`` is on ``sys.path``
through ``tests/conftest.py``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_for(
    check: Callable[[], Any], timeout: float = 20.0, what: str = "condition", every: float = 0.1
) -> Any:
    """Poll ``check`` until it returns something truthy and return that; AssertionError naming
    ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
