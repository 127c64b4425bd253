"""The suite's own isolation (``isolated_environment`` in tests/conftest.py): a test sees no
``DRIFTLOOP_*``, ``MLFLOW_*`` or ``PREFECT_*`` value it did not set itself, telemetry stays off,
and the process settings are read again for every test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from driftloop.settings import QUIET_ENV, Settings, get_settings, use_settings

#: What a developer's shell (or a test that bypassed monkeypatch) could leave behind.
LEAKED = {
    "DRIFTLOOP_STATE_DIR": "/nonexistent/leaked-state",
    "DRIFTLOOP_MLFLOW__PORT": "1",
    "MLFLOW_TRACKING_URI": "http://leaked.invalid:5000",
    "PREFECT_API_URL": "http://leaked.invalid:4200/api",
    "MLFLOW_DISABLE_TELEMETRY": "false",
}


@pytest.fixture(scope="module")
def leaked() -> Iterator[None]:
    """Sets ``LEAKED`` in os.environ before this module's tests start (module fixtures run
    before the per-test isolation), and puts the previous values back afterwards."""
    old = {key: os.environ.get(key) for key in LEAKED}
    os.environ.update(LEAKED)
    yield
    for key, value in old.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def test_leaked_configuration_is_removed_and_telemetry_stays_off(leaked: None) -> None:
    for key in LEAKED:
        if key in QUIET_ENV:
            assert os.environ[key] == QUIET_ENV[key]
        else:
            assert key not in os.environ
    settings = get_settings()
    assert settings.state_dir == Path(".driftloop")
    assert settings.mlflow.port == 5000


def test_a_test_may_set_settings_without_cleaning_up(leaked: None, tmp_path: Path) -> None:
    use_settings(Settings(state_dir=tmp_path))  # no use_settings(None): the fixture resets
    assert get_settings().state == tmp_path.resolve()


def test_the_next_test_reads_the_environment_again(leaked: None) -> None:
    assert get_settings().state_dir == Path(".driftloop")
