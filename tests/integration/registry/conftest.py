"""Fixtures of the registry integration tests: per test, a settings tree on the shared real
MLflow server with a registered model and experiment of its own (named after the test module),
so tests never see each other's aliases, tags or audit log."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from driftloop.settings import Settings


@pytest.fixture
def settings(
    make_settings: Callable[..., Settings], mlflow_server: str, request: pytest.FixtureRequest
) -> Settings:
    prefix = request.module.__name__.rpartition(".")[2].removeprefix("test_").replace("_", "-")
    key = f"{prefix}-{uuid.uuid4().hex[:8]}"
    return make_settings(
        mlflow_uri=mlflow_server, mlflow={"registered_model": key, "experiment": key}
    )
