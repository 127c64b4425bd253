"""Shared fixtures: real MLflow and Prefect servers on 127.0.0.1 (session scoped, started lazily
by the tests that ask for them), isolated settings per test, telemetry off.

Heavy libraries are imported inside fixtures so collecting the suite stays fast.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from driftloop.settings import QUIET_ENV

os.environ.update(QUIET_ENV)
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real MLflow tracking server (SQLite backend, local artifacts) on a free port."""
    from driftloop.embedded.services import free_port, mlflow_service, start_service, stop_service
    from driftloop.settings import MlflowSettings, Settings

    state = tmp_path_factory.mktemp("mlflow-server")
    settings = Settings(state_dir=state, mlflow=MlflowSettings(port=free_port()))
    service = mlflow_service(settings)
    start_service(service, settings)
    try:
        yield settings.mlflow.uri
    finally:
        stop_service(service, settings)


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Prefect server (SQLite) on a free port; the test process is its client."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from driftloop.embedded.services import free_port, prefect_service, start_service, stop_service
    from driftloop.settings import PrefectSettings, Settings

    state = tmp_path_factory.mktemp("prefect-server")
    settings = Settings(state_dir=state, prefect=PrefectSettings(port=free_port()))
    service = prefect_service(settings)
    start_service(service, settings)
    old = os.environ.get("PREFECT_API_URL")
    os.environ["PREFECT_API_URL"] = settings.prefect.url
    try:
        with temporary_settings(updates={PREFECT_API_URL: settings.prefect.url}):
            yield settings.prefect.url
    finally:
        stop_service(service, settings)
        if old is None:
            os.environ.pop("PREFECT_API_URL", None)
        else:
            os.environ["PREFECT_API_URL"] = old


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
