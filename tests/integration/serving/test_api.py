"""The OIP v2 API of a real ``python -m serving`` (uvicorn on 127.0.0.1) against the real MLflow
server: health, metadata, inference, bad input as 4xx, auth, feedback, metrics, admin actions."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from polling import wait_for

from driftloop.data.capture import read_predictions
from driftloop.registry.client import get_alias, get_canary_weight
from driftloop.registry.promotion import read_audit
from driftloop.settings import Settings, use_settings
from serving.examples import features_request, flight_request
from serving.process import ServerProcess

pytestmark = pytest.mark.integration

ADMIN = {"Authorization": "Bearer admin-secret"}
PREDICT = {"Authorization": "Bearer predict-secret"}


@pytest.fixture(scope="module")
def api(
    tmp_path_factory: pytest.TempPathFactory, mlflow_server: str, logged_models: dict[str, str]
) -> Iterator[tuple[Settings, httpx.Client]]:
    from driftloop.embedded.services import free_port
    from driftloop.registry.client import register_logged_model, set_alias

    settings = Settings(
        state_dir=tmp_path_factory.mktemp("serving-api"),
        log_level="WARNING",
        mlflow={"tracking_uri": mlflow_server, "registered_model": f"api-{uuid.uuid4().hex[:6]}"},
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
            },
        },
    )
    use_settings(settings)
    v1 = register_logged_model(logged_models["good"], None, {}, settings).version
    set_alias("champion", v1, settings)
    with ServerProcess(settings) as proc, httpx.Client(base_url=proc.url, timeout=10) as client:
        yield settings, client
    use_settings(None)


def _post(client: httpx.Client, path: str, body: Any, headers: dict[str, str] = PREDICT):
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return client.post(path, content=raw, headers=headers)


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


def _bad(column: str, **change: Any) -> dict[str, Any]:
    body = copy.deepcopy(features_request(2))
    next(t for t in body["inputs"] if t["name"] == column).update(change)
    return body


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        ("infer", b'{"inputs": [', 400, "malformed JSON"),
        ("infer", _bad("distance", shape=[5]), 400, "has 5 rows"),
        ("infer", _bad("distance", datatype="BYTES"), 400, "expected a numeric one"),
        ("infer", _bad("carrier", data=[1, 2]), 400, "non-string value"),
        ("infer", orjson.dumps(features_request(2)).replace(b"500.0", b"NaN"), 400, "NaN or inf"),
        ("infer", features_request(51), 413, "exceed the limit of 50"),
        ("infer", b'{"inputs": [], "pad": "' + b"x" * 210_000 + b'"}', 413, "exceeds 200000"),
        ("versions/999/infer", features_request(1), 404, "version 999 is not loaded"),
        ("feedback", {"request_id": "x", "labels": [2]}, 400, "labels must be 0"),
        ("feedback", {"labels": [1]}, 400, "exactly one of"),
    ],
)
def test_bad_input_is_a_4xx_naming_the_problem(
    api: tuple[Settings, httpx.Client], path: str, body: Any, status: int, message: str
) -> None:
    settings, client = api
    r = _post(client, f"/v2/models/{settings.mlflow.registered_model}/{path}", body)
    assert r.status_code == status
    assert message in r.json()["error"]


def test_unknown_model_and_route_are_404_json(api: tuple[Settings, httpx.Client]) -> None:
    _, client = api
    r = _post(client, "/v2/models/nope/infer", features_request(1))
    assert r.status_code == 404
    assert "unknown model 'nope'" in r.json()["error"]
    assert client.get("/v2/nowhere").json() == {"error": "Not Found"}


def test_flight_without_online_store_is_503_not_500(api: tuple[Settings, httpx.Client]) -> None:
    settings, client = api
    r = _post(client, f"/v2/models/{settings.mlflow.registered_model}/infer", flight_request(1))
    assert r.status_code == 503
    assert "online feature store unavailable" in r.json()["error"]


def test_auth_distinguishes_401_and_403(api: tuple[Settings, httpx.Client]) -> None:
    settings, client = api
    path = f"/v2/models/{settings.mlflow.registered_model}/infer"
    assert _post(client, path, features_request(1), headers={}).status_code == 401
    wrong = {"Authorization": "Bearer guess"}
    assert _post(client, path, features_request(1), headers=wrong).status_code == 401
    assert _post(client, path, features_request(1), headers=ADMIN).status_code == 200
    r = _post(client, "/admin/weight", {"weight": 5}, headers=PREDICT)
    assert r.status_code == 403
    assert "admin scope" in r.json()["error"]


def test_feedback_is_joined_and_metrics_count_requests(api: tuple[Settings, httpx.Client]) -> None:
    settings, client = api
    name = settings.mlflow.registered_model
    rid = f"fb-{uuid.uuid4().hex[:6]}"
    assert _post(client, f"/v2/models/{name}/infer", features_request(2, request_id=rid)).is_success
    r = _post(client, f"/v2/models/{name}/feedback", {"request_id": rid, "labels": [1, 0]})
    assert r.json() == {"accepted": 2}

    def labelled() -> bool:
        log = read_predictions(settings)
        rows = log[log["request_id"] == rid]
        return rows["is_late"].tolist() == [1, 0]

    wait_for(labelled, timeout=10)
    text = client.get("/metrics").text
    assert "driftloop_inference_requests_total{" in text
    assert 'variant="champion"' in text
    assert "driftloop_inference_latency_seconds_bucket" in text


def test_admin_weight_promote_rollback_and_audit(
    api: tuple[Settings, httpx.Client], logged_models: dict[str, str]
) -> None:
    from driftloop.registry.client import register_logged_model, set_alias

    settings, client = api
    assert _post(client, "/admin/rollback", {"reason": "x"}, ADMIN).status_code == 409
    before = get_alias("champion", settings)
    assert before is not None
    v2 = register_logged_model(logged_models["better"], None, {}, settings).version
    set_alias("challenger", v2, settings)
    r = _post(client, "/admin/weight", {"weight": 30, "reason": "try"}, ADMIN)
    assert r.status_code == 200, r.text
    assert get_canary_weight(settings) == 30
    state = client.get("/admin/state", headers=ADMIN).json()
    assert state["replica"]["challenger"] == v2  # reconciled at once
    r = _post(client, "/admin/promote", {"reason": "looks good", "metrics": {"auc": 0.7}}, ADMIN)
    assert r.status_code == 200
    champion = get_alias("champion", settings)
    assert champion is not None
    assert champion.version == v2
    assert get_alias("challenger", settings) is None
    assert get_canary_weight(settings) == 0
    audit = client.get("/admin/audit", headers=ADMIN).json()
    assert [a["action"] for a in audit[-2:]] == ["set_weight", "promote"]
    last = audit[-1]
    assert (last["from_version"], last["to_version"]) == (before.version, v2)
    assert last["reason"] == "looks good"
    assert last["actor"].startswith("token:")
    assert last["metrics"] == {"auc": 0.7}
    assert read_audit(settings) == audit
    health = client.get("/v2/health/ready").json()
    assert health["champion"] == v2
    assert health["challenger"] is None
