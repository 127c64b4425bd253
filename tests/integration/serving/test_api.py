"""The OIP v2 API of a real ``python -m serving`` (uvicorn on 127.0.0.1) against the real MLflow
server: health, metadata, inference with real pyfunc models, the online store being absent,
feedback, metrics, admin actions (tokens reach the server process as digests). The HTTP contract
(bad input as 4xx, 401 vs 403, size limits, OpenAPI) is tested in process by
tests/unit/serving/test_api_contract.py."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from polling import wait_for

from driftloop.data.capture import read_predictions
from driftloop.embedded.services import free_port
from driftloop.registry.client import get_alias, registry_snapshot
from driftloop.registry.integrity import register_verified_version as register_version
from driftloop.registry.promotion import assign_alias_after_gate, read_audit, start_rollout
from driftloop.settings import Settings, use_settings
from serving.examples import features_request, flight_request
from serving.process import ServerProcess

pytestmark = pytest.mark.integration

ADMIN = {"Authorization": "Bearer admin-secret"}
PREDICT = {"Authorization": "Bearer predict-secret"}
FEEDBACK = {"Authorization": "Bearer feedback-secret"}


@pytest.fixture(scope="module")
def api(
    tmp_path_factory: pytest.TempPathFactory, mlflow_server: str, logged_models: dict[str, str]
) -> Iterator[tuple[Settings, httpx.Client]]:
    settings = Settings(
        state_dir=tmp_path_factory.mktemp("serving-api"),
        log_level="WARNING",
        mlflow={
            "tracking_uri": mlflow_server,
            "registered_model": f"api-{uuid.uuid4().hex[:6]}",
            "experiment": "serving-tests",  # where the fake models are logged (conftest)
        },
        serving={
            "port": free_port(),
            "reconcile_interval_s": 0.3,
            "capture_flush_s": 0.1,
            "max_rows_per_request": 50,
            "max_body_bytes": 200_000,
            "auth": {
                "enabled": True,
                "admin_tokens": ["admin-secret"],
                "predict_tokens": ["predict-secret"],
                "feedback_tokens": ["feedback-secret"],
            },
        },
    )
    use_settings(settings)
    v1 = register_version(logged_models["good"], None, {}, settings).version
    assign_alias_after_gate(v1, "champion", "test fixture", settings=settings)
    with ServerProcess(settings) as proc, httpx.Client(base_url=proc.url, timeout=10) as client:
        yield settings, client
    use_settings(None)


def _post(client: httpx.Client, path: str, body: Any, headers: dict[str, str] = PREDICT):
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return client.post(path, content=raw, headers=headers | {"Content-Type": "application/json"})


def test_health_metadata_and_docs(api: tuple[Settings, httpx.Client]) -> None:
    settings, client = api
    name = settings.mlflow.registered_model
    assert client.get("/v2/health/live").json() == {"live": True}
    ready = client.get("/v2/health/ready")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    meta = client.get(f"/v2/models/{name}").json()
    assert meta["name"] == name
    assert meta["versions"] == [meta["parameters"]["champion"]]
    assert {"name": "late_probability", "datatype": "FP64", "shape": [-1]} in meta["outputs"]
    assert client.get(f"/v2/models/{name}/ready").json()["ready"] is True
    assert client.get("/docs").status_code == 200
    schema = client.get("/openapi.json").json()
    assert "InferenceRequest" in schema["components"]["schemas"]
    assert "/v2/models/{name}/infer" in schema["paths"]


def test_infer_returns_probabilities_with_lineage(api: tuple[Settings, httpx.Client]) -> None:
    settings, client = api
    name = settings.mlflow.registered_model
    champion = get_alias("champion", settings)
    assert champion is not None
    r = _post(client, f"/v2/models/{name}/infer", features_request(3, request_id="abc"))
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["model_name"] == name
    assert out["model_version"] == champion.version
    assert out["id"] == "abc"
    probs = out["outputs"][0]["data"]
    assert len(probs) == 3
    assert probs[0] < probs[1] < probs[2]  # the fake model rises with distance
    pinned = _post(
        client, f"/v2/models/{name}/versions/{champion.version}/infer", features_request(1)
    )
    assert pinned.json()["model_version"] == champion.version


def test_flight_without_online_store_is_503_not_500(api: tuple[Settings, httpx.Client]) -> None:
    settings, client = api
    r = _post(client, f"/v2/models/{settings.mlflow.registered_model}/infer", flight_request(1))
    assert r.status_code == 503
    assert "online feature store unavailable" in r.json()["error"]


def test_feedback_is_joined_and_metrics_count_requests(api: tuple[Settings, httpx.Client]) -> None:
    settings, client = api
    name = settings.mlflow.registered_model
    rid = f"fb-{uuid.uuid4().hex[:6]}"
    assert _post(client, f"/v2/models/{name}/infer", features_request(2, request_id=rid)).is_success
    body = {"request_id": rid, "labels": [1, 0]}
    r = _post(client, f"/v2/models/{name}/feedback", body, FEEDBACK)
    assert r.json() == {"accepted": 2, "conflicts": 0}

    def labelled() -> bool:
        log = read_predictions(settings)
        rows = log[log["request_id"] == rid]
        return rows["is_late"].fillna(-1).tolist() == [1, 0]  # NA until the labels are written

    wait_for(labelled, timeout=10)
    text = client.get("/metrics").text
    assert "driftloop_inference_requests_total{" in text
    assert 'variant="champion"' in text
    assert "driftloop_inference_latency_seconds_bucket" in text


def test_admin_weight_promote_rollback_and_audit(
    api: tuple[Settings, httpx.Client], logged_models: dict[str, str]
) -> None:
    settings, client = api
    assert _post(client, "/admin/rollback", {"reason": "x"}, ADMIN).status_code == 409
    before = get_alias("champion", settings)
    assert before is not None
    v2 = register_version(logged_models["better"], None, {}, settings).version
    assign_alias_after_gate(v2, "challenger", "test", settings=settings)
    r = _post(client, "/admin/weight", {"weight": 30, "reason": "try"}, ADMIN)
    assert r.status_code == 200, r.text
    assert registry_snapshot(settings).weight == 30
    state = client.get("/admin/state", headers=ADMIN).json()
    assert state["replica"]["challenger"] == v2  # reconciled at once
    r = _post(client, "/admin/promote", {"reason": "no canary yet"}, ADMIN)
    assert r.status_code == 409, r.text  # only a challenger whose canary started is promoted
    start_rollout(30, "test", settings)
    r = _post(client, "/admin/promote", {"reason": "looks good", "metrics": {"auc": 0.7}}, ADMIN)
    assert r.status_code == 200
    champion = get_alias("champion", settings)
    assert champion is not None
    assert champion.version == v2
    assert get_alias("challenger", settings) is None
    assert registry_snapshot(settings).weight == 0
    audit = client.get("/admin/audit", headers=ADMIN).json()
    assert [a["action"] for a in audit[-3:]] == ["set_weight", "rollout_start", "promote"]
    last = audit[-1]
    assert (last["from_version"], last["to_version"]) == (before.version, v2)
    assert last["reason"] == "looks good"
    assert last["actor"].startswith("token:")
    assert last["metrics"] == {"auc": 0.7}
    assert read_audit(settings) == audit
    health = client.get("/v2/health/ready").json()
    assert health["champion"] == v2
    assert health["challenger"] is None
