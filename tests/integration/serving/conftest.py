"""Fixtures of the serving integration tests: small real pyfunc models logged once per session
to the shared MLflow server, versions registered per test under a unique model name, and real
``python -m serving`` processes (uvicorn) on free ports."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from driftloop.embedded.services import free_port
from driftloop.registry.integrity import register_verified_version
from driftloop.registry.promotion import assign_alias_after_gate, set_mode, set_weight
from driftloop.settings import Settings
from serving.process import ServerProcess

EXPERIMENT = "serving-tests"
MODEL_CODE = Path(__file__).with_name("fake_model.py")
#: kind -> model_config of tests/integration/serving/fake_model.py
KINDS: dict[str, dict[str, Any]] = {
    "good": {"bias": -1.0},
    "better": {"bias": -0.9},
    "raise": {"kind": "raise"},
    "slow": {"kind": "slow", "sleep_ms": 60},
}
ADMIN_TOKEN, PREDICT_TOKEN = "admin-secret", "predict-secret"


@pytest.fixture(scope="session")
def logged_models(mlflow_server: str) -> dict[str, str]:
    """Model URI per kind, logged once (models from code: the file is the model). The global
    MLflow tracking URI is restored afterwards."""
    import mlflow
    from mlflow import MlflowClient

    client = MlflowClient(mlflow_server)
    found = client.get_experiment_by_name(EXPERIMENT)
    exp_id = found.experiment_id if found else client.create_experiment(EXPERIMENT)
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(mlflow_server)
    uris = {}
    try:
        for kind, config in KINDS.items():
            with mlflow.start_run(experiment_id=exp_id, run_name=f"fake-{kind}"):
                info = mlflow.pyfunc.log_model(
                    name="model",
                    python_model=str(MODEL_CODE),
                    model_config=config,
                    pip_requirements=["mlflow"],
                )
            uris[kind] = info.model_uri
    finally:
        mlflow.set_tracking_uri(previous)
    return uris


@pytest.fixture
def serving_settings(
    make_settings: Callable[..., Settings], mlflow_server: str
) -> Callable[..., Settings]:
    """Settings for one test: a fresh registered model name, a free serving port, fast
    reconciliation and capture flushes; keyword overrides per section."""

    def build(**overrides: Any) -> Settings:
        serving = {
            "port": free_port(),
            "reconcile_interval_s": 0.3,
            "capture_flush_s": 0.2,
            **overrides.pop("serving", {}),
        }
        # the fake models are logged in EXPERIMENT: serving trusts only runs of its experiment
        mlflow = {
            "registered_model": f"delay-{uuid.uuid4().hex[:8]}",
            "experiment": EXPERIMENT,
            **overrides.pop("mlflow", {}),
        }
        return make_settings(
            mlflow_uri=overrides.pop("mlflow_uri", mlflow_server),
            mlflow=mlflow,
            serving=serving,
            log_level="WARNING",
            **overrides,
        )

    return build


@pytest.fixture
def register(logged_models: dict[str, str]) -> Callable[..., str]:
    """``register(kind, settings, alias=None)`` -> new version of settings' registered model."""

    def reg(kind: str, settings: Settings, alias: str | None = None) -> str:
        info = register_verified_version(logged_models[kind], None, {"kind": kind}, settings)
        if alias:
            assign_alias_after_gate(info.version, alias, "test fixture", settings=settings)
        return info.version

    return reg


@pytest.fixture
def server() -> Iterator[Callable[[Settings], Any]]:
    """``server(settings)`` starts ``python -m serving`` (waits until ready); stopped after."""
    started: list[ServerProcess] = []

    def start(settings: Settings) -> ServerProcess:
        proc = ServerProcess(settings).start()
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()


@dataclass(frozen=True)
class Canary:
    """A running server with champion ``v1`` ("good") and challenger ``v2`` loaded."""

    settings: Settings
    url: str  # the server's base URL
    infer: str  # the registered model's infer URL
    v1: str
    v2: str


@pytest.fixture
def canary(
    serving_settings: Callable[..., Settings],
    register: Callable[..., str],
    server: Callable[[Settings], Any],
) -> Callable[..., Canary]:
    """``canary(kind, weight=None, mode=None, prefect_url=None, serving=None)``: register a "good"
    champion and a ``kind`` challenger, set the registry's canary weight/mode when given, start a
    server (``serving``: overrides of its serving settings) and wait until it has loaded the
    challenger."""
    import httpx
    from polling import wait_for

    def start(
        kind: str,
        weight: int | None = None,
        mode: str | None = None,
        prefect_url: str | None = None,
        serving: dict[str, Any] | None = None,
    ) -> Canary:
        settings = serving_settings(prefect_url=prefect_url, serving=serving or {})
        v1 = register("good", settings, alias="champion")
        v2 = register(kind, settings, alias="challenger")
        if weight is not None:
            set_weight(weight, "test", "test fixture", settings)
        if mode is not None:
            set_mode(mode, "test", "test fixture", settings)
        proc = server(settings)
        wait_for(lambda: httpx.get(f"{proc.url}/v2/health/ready").json()["challenger"] == v2)
        infer = f"{proc.url}/v2/models/{settings.mlflow.registered_model}/infer"
        return Canary(settings, proc.url, infer, v1, v2)

    return start
