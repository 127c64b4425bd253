"""Fixtures of the training integration tests: a real data repository (DVC) with four ingested
months and a real Feast repo (sources built, applied), built once per session; per test a
settings tree on the real MLflow server with its own registered model and experiment."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

MONTHS = ["2013-01", "2013-02", "2013-03", "2013-04"]


@pytest.fixture(scope="session")
def data_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from driftloop.data.ingest import ingest_months
    from driftloop.features import apply, build_sources
    from driftloop.settings import Settings

    state = tmp_path_factory.mktemp("training-state")
    settings = Settings(state_dir=state)
    ingest_months(MONTHS, settings)
    build_sources(None, settings)
    apply(settings)
    return state


@pytest.fixture
def train_settings(data_state: Path, mlflow_server: str, make_settings: Any) -> Any:
    """Settings on the shared data state, a fresh registered model, 2 quick epochs."""
    key = uuid.uuid4().hex[:8]
    return make_settings(
        mlflow_uri=mlflow_server,
        state_dir=data_state,
        mlflow={
            "tracking_uri": mlflow_server,
            "registered_model": f"flight-delay-{key}",
            "experiment": f"training-{key}",
        },
        training={"epochs": 2, "batch_size": 1024},
    )
