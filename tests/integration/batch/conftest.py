"""Fixtures of the batch-scoring tests: one real data repository (DVC, 2013-01..02 ingested),
the Feast repo built and applied, and one real champion trained on 2013-01 (holdout 2013-02)
on the shared MLflow server, built once per session; per test, settings on that state."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from driftloop.settings import Settings

MONTHS = ["2013-01", "2013-02"]
#: The month the tests score (ingested; the champion's holdout).
SCORED = "2013-02"


@dataclass(frozen=True)
class Trained:
    state: Path
    model: str
    experiment: str
    version: str


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory, mlflow_server: str) -> Trained:
    from driftloop.data.ingest import ingest_months
    from driftloop.features import apply, build_sources
    from driftloop.settings import use_settings
    from driftloop.training.pipeline import train_and_register

    key = uuid.uuid4().hex[:8]
    state = tmp_path_factory.mktemp("batch-state")
    settings = Settings(
        state_dir=state,
        mlflow={
            "tracking_uri": mlflow_server,
            "registered_model": f"batch-{key}",
            "experiment": f"batch-{key}",
        },
        training={"epochs": 1, "batch_size": 1024},
    )
    use_settings(settings)
    try:
        ingest_months(MONTHS, settings)
        build_sources(None, settings)
        apply(settings)
        result = train_and_register(MONTHS[0], MONTHS[0], settings)
    finally:
        use_settings(None)
    assert result.alias == "champion", result.reason
    return Trained(
        state, settings.mlflow.registered_model, settings.mlflow.experiment, result.version
    )


@pytest.fixture
def batch_settings(
    trained: Trained, mlflow_server: str, make_settings: Callable[..., Settings]
) -> Callable[..., Settings]:
    """``batch_settings(**overrides)``: settings on the trained state and model (process-wide)."""

    def build(**overrides: Any) -> Settings:
        return make_settings(
            mlflow_uri=mlflow_server,
            state_dir=trained.state,
            mlflow={"registered_model": trained.model, "experiment": trained.experiment},
            log_level="WARNING",
            **overrides,
        )

    return build
