"""Shared fixtures: real MLflow and Prefect servers on 127.0.0.1 (session scoped, started lazily
by the tests that ask for them), an isolated environment and settings per test, telemetry off.

Heavy libraries are imported inside fixtures so collecting the suite stays fast.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from driftloop.settings import QUIET_ENV, use_settings

#: Variables that configure driftloop, MLflow or Prefect: no test sees the shell's values.
ISOLATED_PREFIXES = ("DRIFTLOOP_", "MLFLOW_", "PREFECT_")

#: Variables a session fixture exported for the tests that use it, by fixture name (filled by
#: :func:`export_for_session`, re-applied per test by :func:`isolated_environment`).
SESSION_ENV: dict[str, dict[str, str]] = {}


def _isolated(key: str) -> bool:
    return key.startswith(ISOLATED_PREFIXES) and key not in QUIET_ENV


# Once, before any test module imports MLflow or Prefect (they read their variables at import):
# the shell's configuration of driftloop, MLflow and Prefect is dropped, telemetry is off.
for _key in [k for k in os.environ if _isolated(k)]:
    del os.environ[_key]
os.environ.update(QUIET_ENV)
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")


def export_for_session(fixture: str, **values: str) -> dict[str, str | None]:
    """Set ``values`` in ``os.environ`` for the rest of the session on behalf of the session
    fixture named ``fixture`` (so subprocesses and module fixtures see them) and register them,
    so :func:`isolated_environment` gives them back to every test that uses that fixture.
    Returns the previous values for :func:`unexport_for_session`."""
    old = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    SESSION_ENV[fixture] = dict(values)
    return old


def unexport_for_session(fixture: str, old: dict[str, str | None]) -> None:
    """Undo :func:`export_for_session` when the session fixture ends."""
    SESSION_ENV.pop(fixture, None)
    for key, value in old.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(autouse=True)
def isolated_environment(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """Every test starts from a known environment and re-reads its settings.

    - Every ``DRIFTLOOP_*``, ``MLFLOW_*`` and ``PREFECT_*`` variable is removed (a developer's
      shell, or an earlier test that set one without monkeypatch, cannot leak into the test),
      except the telemetry switches of :data:`driftloop.settings.QUIET_ENV`, which are set.
    - Session fixtures that must export variables (``prefect_server``: ``PREFECT_API_URL``) do
      so through :func:`export_for_session`; their variables are put back for exactly the
      tests that use that fixture, directly or through another fixture. Session fixtures are
      set up before this function-scoped fixture, so the registry is filled in time; a test
      that does not use the fixture runs without the variable.
    - The process settings cache is reset before and after (``use_settings(None)``).

    Everything is undone by ``monkeypatch`` after the test.
    """
    for key in [k for k in os.environ if _isolated(k)]:
        monkeypatch.delenv(key)
    for key, value in QUIET_ENV.items():
        monkeypatch.setenv(key, value)
    for fixture in request.fixturenames:
        for key, value in SESSION_ENV.get(fixture, {}).items():
            monkeypatch.setenv(key, value)
    use_settings(None)
    yield
    use_settings(None)


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real MLflow tracking server (SQLite backend, local artifacts) on a free port, without
    MLflow's basic auth: the tests that use it exercise everything but access control (the
    embedded platform's auth is tested in tests/integration/platform/test_platform_auth.py)."""
    from driftloop.embedded.services import free_port, mlflow_service, start_service, stop_service
    from driftloop.settings import MlflowSettings, Settings

    state = tmp_path_factory.mktemp("mlflow-server")
    settings = Settings(
        state_dir=state, mlflow=MlflowSettings(port=free_port(), auth={"enabled": False})
    )
    service = mlflow_service(settings)
    start_service(service, settings)
    try:
        yield settings.mlflow.uri
    finally:
        stop_service(service, settings)


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Prefect server (SQLite) on a free port; the test process is its client. Without
    API auth (tested with the embedded platform in tests/integration/platform)."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from driftloop.embedded.services import free_port, prefect_service, start_service, stop_service
    from driftloop.settings import PrefectSettings, Settings

    state = tmp_path_factory.mktemp("prefect-server")
    settings = Settings(
        state_dir=state, prefect=PrefectSettings(port=free_port(), auth={"enabled": False})
    )
    service = prefect_service(settings)
    start_service(service, settings)
    # Subprocesses (CLI, workers) find the server through the variable; this process through
    # Prefect's settings context, which the session keeps for every test.
    old = export_for_session("prefect_server", PREFECT_API_URL=settings.prefect.url)
    try:
        with temporary_settings(updates={PREFECT_API_URL: settings.prefect.url}):
            yield settings.prefect.url
    finally:
        stop_service(service, settings)
        unexport_for_session("prefect_server", old)


@pytest.fixture
def make_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Build Settings with state in this test's tmp folder and make them the process settings.

    ``make_settings(mlflow_uri=..., prefect_url=..., **section_overrides)`` where overrides are
    ``{"training": {"epochs": 2}}``-style dicts or plain fields.
    """
    from driftloop.settings import Settings, use_settings

    def build(
        mlflow_uri: str | None = None, prefect_url: str | None = None, **overrides: Any
    ) -> Settings:
        data: dict[str, Any] = {"state_dir": tmp_path / "state", **overrides}
        if mlflow_uri:
            data.setdefault("mlflow", {})["tracking_uri"] = mlflow_uri
            monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_uri)
        if prefect_url:
            data.setdefault("prefect", {})["api_url"] = prefect_url
        settings = Settings(**data)
        monkeypatch.setenv("DRIFTLOOP_STATE_DIR", str(settings.state))
        use_settings(settings)
        return settings

    yield build
    use_settings(None)
