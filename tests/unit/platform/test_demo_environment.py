"""The demo's in-process flows talk to the platform's Prefect server, not to an ephemeral one."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def test_demo_environment_points_an_already_imported_prefect_at_the_platform(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # prefect is imported (and reads its settings) long before the demo sets PREFECT_API_URL
    from prefect.context import refresh_global_settings_context
    from prefect.settings import PREFECT_API_URL

    from driftloop.embedded.demo.environment import apply_demo_environment

    monkeypatch.setattr(os, "environ", os.environ.copy())  # the demo writes the environment
    monkeypatch.setenv("DRIFTLOOP_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("DRIFTLOOP_PREFECT__PORT", "4999")
    try:
        settings = apply_demo_environment()
        assert settings.prefect.url == "http://127.0.0.1:4999/api"
        assert PREFECT_API_URL.value() == settings.prefect.url
    finally:
        monkeypatch.undo()
        refresh_global_settings_context()
        from driftloop.settings import use_settings

        use_settings(None)
