"""MLflow goes away mid-run: the last models keep answering, readiness says degraded; when MLflow
returns on the same port with the same store, reconciliation resumes. Uses its own MLflow."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import orjson
import pytest
from polling import wait_for

from driftloop.embedded.services import free_port, mlflow_service, start_service, stop_service
from driftloop.registry.integrity import register_verified_version as register_version
from driftloop.registry.promotion import assign_alias_after_gate, set_weight
from driftloop.settings import MlflowSettings, Settings
from serving.examples import features_request

pytestmark = pytest.mark.integration

CODE = __import__("pathlib").Path(__file__).with_name("fake_model.py")
#: the experiment of serving_settings (conftest): serving trusts only runs of its experiment
EXPERIMENT = "serving-tests"


@pytest.fixture
def own_mlflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A dedicated MLflow server (this test stops and restarts it)."""
    state = tmp_path_factory.mktemp("own-mlflow")
    settings = Settings(
        state_dir=state, mlflow=MlflowSettings(port=free_port(), auth={"enabled": False})
    )
    start_service(mlflow_service(settings), settings)
    try:
        yield settings
    finally:
        stop_service(mlflow_service(settings), settings)


def _log(uri: str, bias: float) -> str:
    """Log the fake model to ``uri`` without leaving global MLflow state behind."""
    import mlflow
    from mlflow import MlflowClient

    previous = mlflow.get_tracking_uri()
    client = MlflowClient(uri)
    found = client.get_experiment_by_name(EXPERIMENT)
    exp_id = found.experiment_id if found else client.create_experiment(EXPERIMENT)
    mlflow.set_tracking_uri(uri)
    try:
        with mlflow.start_run(experiment_id=exp_id):
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=str(CODE),
                model_config={"bias": bias},
                pip_requirements=["mlflow"],
            )
    finally:
        mlflow.set_tracking_uri(previous)
    return str(info.model_uri)


def test_serving_survives_an_mlflow_outage_and_resumes(
    own_mlflow: Settings,
    serving_settings: Callable[..., Settings],
    server: Callable[[Settings], Any],
) -> None:
    settings = serving_settings(mlflow_uri=own_mlflow.mlflow.uri)
    v1 = register_version(_log(own_mlflow.mlflow.uri, -1.0), None, {}, settings).version
    v2 = register_version(_log(own_mlflow.mlflow.uri, -0.5), None, {}, settings).version
    assign_alias_after_gate(v1, "champion", "test", settings=settings)
    proc = server(settings)
    url = f"{proc.url}/v2/models/{settings.mlflow.registered_model}/infer"
    ready = f"{proc.url}/v2/health/ready"
    body = orjson.dumps(features_request(1))

    stop_service(mlflow_service(own_mlflow), own_mlflow)
    wait_for(lambda: httpx.get(ready).json()["status"] == "degraded", timeout=30)
    health = httpx.get(ready)
    assert health.status_code == 200  # degraded still takes traffic
    assert "unreachable" in health.json()["last_error"]
    assert httpx.get(f"{proc.url}/v2/health/live").status_code == 200
    for _ in range(50):
        r = httpx.post(url, content=body, headers={"Content-Type": "application/json"})
        assert r.status_code == 200
        assert r.json()["model_version"] == v1

    start_service(mlflow_service(own_mlflow), own_mlflow)  # same port, same store
    wait_for(lambda: httpx.get(ready).json()["status"] == "ready", timeout=60)
    assign_alias_after_gate(v2, "challenger", "test", settings=settings)
    set_weight(100, "test", "test", settings)
    # alias and weight are two registry writes: a reconcile may see the first alone
    wait_for(
        lambda: (
            (lambda h: (h["challenger"], h["canary_weight"]))(httpx.get(ready).json()) == (v2, 100)
        ),
        timeout=30,
    )
    assert (
        httpx.post(url, content=body, headers={"Content-Type": "application/json"}).json()[
            "model_version"
        ]
        == v2
    )
