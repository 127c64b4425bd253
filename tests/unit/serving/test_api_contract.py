"""The HTTP contract of the inference API, in process: ``TestClient(create_app(...))`` with a
scripted registry, an in-process model and an in-memory online store (no MLflow, no uvicorn).

Status codes and ``{"error": ...}`` bodies of bad input, auth (401 vs 403), size limits, health
and readiness, and the OpenAPI document with its example bodies. What needs a real MLflow or a
real server process (model loading, admin actions, the online store failing to open) stays in
tests/integration/serving."""

from __future__ import annotations

import asyncio
import copy
import hashlib
import inspect
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from pydantic import BaseModel
from serving_doubles import InMemoryFeatures

from driftloop.data.capture import read_feedback
from driftloop.registry import promotion
from driftloop.registry.client import RegistrySnapshot
from driftloop.settings import Settings
from serving.app import create_app
from serving.examples import features_request, flight_request
from serving.handles import ModelHandle
from serving.schemas import (
    ActionRequest,
    FeedbackRequest,
    InferenceRequest,
    InferenceResponse,
    ModelMetadata,
    RestoreRequest,
    WeightRequest,
)

MODEL = "delay"
PREDICT = {"Authorization": "Bearer predict-secret"}
ADMIN = {"Authorization": "Bearer admin-secret"}
FEEDBACK = {"Authorization": "Bearer feedback-secret"}
MAX_ROWS, MAX_BODY = 50, 200_000


def _settings(state: Path, **serving: Any) -> Settings:
    return Settings(
        state_dir=state,
        mlflow={"registered_model": MODEL},
        serving=serving
        | {
            "reconcile_interval_s": 60.0,
            "capture_flush_s": 0.05,
            "max_rows_per_request": MAX_ROWS,
            "max_body_bytes": MAX_BODY,
            "auth": {
                "enabled": True,
                "admin_tokens": ["admin-secret"],
                "predict_tokens": ["predict-secret"],
                "feedback_tokens": ["feedback-secret"],
            },
        },
    )


def _load(name: str, version: str, settings: Settings) -> ModelHandle:
    """A model whose probability rises with distance (like the integration tests' fake)."""

    def predict(df: pd.DataFrame) -> np.ndarray:
        distance = df["distance"].to_numpy(dtype=np.float64)
        return 1.0 / (1.0 + np.exp(-0.002 * (distance - 1000.0)))

    return ModelHandle(name, version, predict)


def _app(state: Path, champion: str | None = "1", **serving: Any) -> FastAPI:
    def snapshot(settings: Settings, name: str) -> RegistrySnapshot:
        return RegistrySnapshot(name, champion, None, 0, None)

    return create_app(
        _settings(state, **serving),
        loader=_load,
        feature_source=InMemoryFeatures(),
        snapshot=snapshot,
    )


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with TestClient(_app(tmp_path_factory.mktemp("api-contract"))) as test_client:
        yield test_client


JSON = {"Content-Type": "application/json"}


def _post(client: TestClient, path: str, body: Any, headers: dict[str, str] | None = None) -> Any:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return client.post(path, content=raw, headers=(PREDICT if headers is None else headers) | JSON)


def _error(response: Any, status: int) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert isinstance(body["error"], str)
    return str(body["error"])


def _bad(column: str, **change: Any) -> dict[str, Any]:
    body = copy.deepcopy(features_request(2))
    next(t for t in body["inputs"] if t["name"] == column).update(change)
    return body


# -- health and metadata ---------------------------------------------------------------------
def test_health_live_ready_and_server_metadata(client: TestClient) -> None:
    assert client.get("/v2/health/live").json() == {"live": True}
    ready = client.get("/v2/health/ready")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    assert ready.json()["champion"] == "1"
    assert ready.json()["online_features"] is True
    assert client.get("/v2").json()["name"] == "driftloop"


def test_model_metadata_lists_loaded_versions_and_input_modes(client: TestClient) -> None:
    meta = ModelMetadata.model_validate(client.get(f"/v2/models/{MODEL}").json())
    assert meta.versions == ["1"]
    assert meta.parameters is not None
    assert meta.parameters["champion"] == "1"
    assert {"flight", "features"} == set(meta.parameters["content_types"])
    assert client.get(f"/v2/models/{MODEL}/versions/1").json()["versions"] == ["1"]
    assert client.get(f"/v2/models/{MODEL}/ready").json() == {"name": MODEL, "ready": True}
    assert client.get(f"/v2/models/{MODEL}/versions/1/ready").status_code == 200
    assert client.get(f"/v2/models/{MODEL}/versions/7/ready").status_code == 503


def test_without_a_champion_ready_is_503_and_infer_is_503(tmp_path: Path) -> None:
    with TestClient(_app(tmp_path, champion=None)) as client:
        ready = client.get("/v2/health/ready")
        assert ready.status_code == 503
        assert ready.json()["status"] == "not_ready"
        assert client.get("/v2/health/live").status_code == 200
        assert client.get(f"/v2/models/{MODEL}/ready").status_code == 503
        r = _post(client, f"/v2/models/{MODEL}/infer", features_request(1))
        assert "no champion" in _error(r, 503)


# -- inference ---------------------------------------------------------------------------------
def test_infer_returns_probabilities_with_lineage(client: TestClient) -> None:
    r = _post(client, f"/v2/models/{MODEL}/infer", features_request(3, request_id="abc"))
    assert r.status_code == 200, r.text
    out = InferenceResponse.model_validate(r.json())
    assert (out.model_name, out.model_version, out.id) == (MODEL, "1", "abc")
    # a version registered without a threshold answers at the default, and says so
    assert out.parameters == {
        "variant": "champion",
        "threshold": 0.5,
        "threshold_source": "default",
        "lineage_id": "",  # a handle built without the registry has no lineage
    }
    probs = out.outputs[0].data
    assert probs[0] < probs[1] < probs[2]  # rises with distance
    pinned = _post(client, f"/v2/models/{MODEL}/versions/1/infer", features_request(1))
    assert pinned.json()["model_version"] == "1"


def test_flight_mode_takes_features_from_the_online_store(client: TestClient) -> None:
    r = _post(client, f"/v2/models/{MODEL}/infer", flight_request(2))
    assert r.status_code == 200, r.text
    assert r.json()["outputs"][0]["shape"] == [2]


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [
        ("infer", b'{"inputs": [', 400, "malformed JSON"),
        ("infer", b"", 400, "malformed JSON"),
        ("infer", _bad("distance", shape=[5]), 400, "has 5 rows"),
        ("infer", _bad("distance", shape=[2, 3]), 400, "expected [n] or [n, 1]"),
        ("infer", _bad("distance", datatype="BYTES"), 400, "expected a numeric one"),
        ("infer", _bad("carrier", datatype="FP64"), 400, "expected BYTES"),
        ("infer", _bad("distance", datatype="FP128"), 400, "datatype"),
        ("infer", _bad("carrier", data=[1, 2]), 400, "non-string value"),
        ("infer", _bad("distance", data=["far", "near"]), 400, "non-numeric value"),
        ("infer", _bad("distance", data=[None, 1.0]), 400, "'distance' is null at row 0"),
        ("infer", orjson.dumps(features_request(2)).replace(b"500.0", b"NaN"), 400, "NaN or inf"),
        ("infer", _bad("distance", name="speed"), 400, "unknown input 'speed'"),
        ("infer", {"inputs": []}, 400, "no inputs"),
        ("infer", features_request(1, content_type="csv"), 400, "content_type must be one of"),
        ("infer", features_request(1) | {"outputs": [{"name": "x"}]}, 400, "unknown output"),
        ("infer", features_request(MAX_ROWS + 1), 413, f"exceed the limit of {MAX_ROWS}"),
        ("infer", b'{"inputs": [], "pad": "' + b"x" * MAX_BODY + b'"}', 413, "exceeds 200000"),
        ("versions/999/infer", features_request(1), 404, "version 999 is not loaded"),
        ("feedback", {"request_id": "x", "labels": [2]}, 400, "labels must be 0"),
        ("feedback", {"labels": [1]}, 400, "exactly one of"),
        ("feedback", {"request_id": "x", "labels": []}, 400, "labels"),
        ("feedback", b"[1", 400, "malformed JSON"),
    ],
)
def test_bad_input_is_a_4xx_naming_the_problem(
    client: TestClient, path: str, body: Any, status: int, message: str
) -> None:
    r = _post(client, f"/v2/models/{MODEL}/{path}", body, FEEDBACK if path == "feedback" else None)
    assert message in _error(r, status)


def test_unknown_model_route_and_method_are_json_errors(client: TestClient) -> None:
    assert "unknown model 'nope'" in _error(
        _post(client, "/v2/models/nope/infer", features_request(1)), 404
    )
    assert "unknown model 'nope'" in _error(client.get("/v2/models/nope"), 404)
    assert "version 9 is not loaded" in _error(client.get(f"/v2/models/{MODEL}/versions/9"), 404)
    assert _error(client.get("/v2/nowhere"), 404) == "Not Found"
    assert _error(client.get(f"/v2/models/{MODEL}/infer"), 405) == "Method Not Allowed"


def test_feedback_is_accepted_by_request_id(client: TestClient) -> None:
    assert _post(
        client, f"/v2/models/{MODEL}/infer", features_request(2, request_id="fb1")
    ).is_success
    r = _post(
        client, f"/v2/models/{MODEL}/feedback", {"request_id": "fb1", "labels": [1, 0]}, FEEDBACK
    )
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == 2


def test_metrics_count_requests_and_rejections(client: TestClient) -> None:
    _post(client, f"/v2/models/{MODEL}/infer", features_request(1))
    _post(client, f"/v2/models/{MODEL}/infer", b"{")
    text = client.get("/metrics").text
    live = 'model_version="1",traffic="live",variant="champion"'
    assert f"driftloop_inference_requests_total{{{live}}}" in text
    assert 'driftloop_rejected_requests_total{status="400"}' in text
    assert "driftloop_registry_up 1.0" in text


# -- auth --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer guess"}, {"Authorization": "Basic cHJlZGljdA=="}],
    ids=["missing", "unknown", "not-bearer"],
)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", f"/v2/models/{MODEL}/infer"),
        ("POST", f"/v2/models/{MODEL}/versions/1/infer"),
        ("POST", f"/v2/models/{MODEL}/feedback"),
        ("GET", "/admin/state"),
        ("GET", "/admin/audit"),
        ("POST", "/admin/weight"),
        ("POST", "/admin/promote"),
        ("POST", "/admin/rollback"),
    ],
)
def test_missing_or_unknown_token_is_401_before_the_body_is_read(
    client: TestClient, method: str, path: str, headers: dict[str, str]
) -> None:
    r = client.request(method, path, content=b"{not json", headers=headers)
    _error(r, 401)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/admin/state"),
        ("GET", "/admin/audit"),
        ("POST", "/admin/weight"),
        ("POST", "/admin/promote"),
        ("POST", "/admin/rollback"),
    ],
)
def test_predict_token_on_admin_routes_is_403(client: TestClient, method: str, path: str) -> None:
    r = client.request(method, path, content=b"{}", headers=PREDICT)
    assert "admin scope" in _error(r, 403)


def test_admin_token_may_predict(client: TestClient) -> None:
    r = _post(client, f"/v2/models/{MODEL}/infer", features_request(1), headers=ADMIN)
    assert r.status_code == 200, r.text


def test_admin_bodies_are_validated_after_auth(client: TestClient) -> None:
    assert "weight" in _error(_post(client, "/admin/weight", {"weight": 101}, ADMIN), 400)
    assert "extra" in _error(_post(client, "/admin/promote", {"why": "x"}, ADMIN), 400).lower()
    huge = b'{"reason": "' + b"x" * MAX_BODY + b'"}'
    assert "exceeds" in _error(_post(client, "/admin/rollback", huge, ADMIN), 413)


def test_admin_actions_answer_409_without_a_challenger_and_the_audit_record_with_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The admin routes' outcomes in process: the registry writer (promotion.py) runs for real
    against a scripted registry (its raw MLflow writes recorded instead of sent)."""
    aliases: dict[str, str] = {"champion": "1"}
    writes: list[tuple[str, ...]] = []

    def snapshot(settings: Settings, name: str | None = None) -> RegistrySnapshot:
        challenger = aliases.get("challenger")
        started = None if challenger is None else "2026-01-01T00:00:00+00:00"  # a rollout ran
        return RegistrySnapshot(
            MODEL, aliases.get("champion"), challenger, 0, None, rollout_started=started
        )

    def set_alias(alias: str, version: str, settings: Settings) -> None:
        writes.append(("set_alias", alias, version))
        aliases[alias] = version

    def delete_alias(alias: str, settings: Settings) -> None:
        writes.append(("delete_alias", alias))
        aliases.pop(alias, None)

    monkeypatch.setattr(promotion, "registry_snapshot", snapshot)
    monkeypatch.setattr(promotion, "_set_alias", set_alias)
    monkeypatch.setattr(promotion, "_delete_alias", delete_alias)
    monkeypatch.setattr(promotion, "_set_model_tag", lambda k, v, s: writes.append(("tag", k, v)))
    monkeypatch.setattr(
        promotion, "_set_version_tag", lambda v, k, val, s: writes.append(("vtag", v, k, val))
    )
    app = create_app(  # the replica reads the same scripted registry
        _settings(tmp_path), loader=_load, feature_source=InMemoryFeatures(), snapshot=snapshot
    )
    with TestClient(app) as client:
        assert "no challenger" in _error(_post(client, "/admin/promote", {}, ADMIN), 409)
        assert "no challenger" in _error(_post(client, "/admin/rollback", {}, ADMIN), 409)
        assert writes == []
        aliases["challenger"] = "2"
        r = _post(client, "/admin/promote", {"reason": "looks good"}, ADMIN)
        assert r.status_code == 200, r.text
        record = r.json()
        assert (record["action"], record["from_version"], record["to_version"]) == (
            "promote",
            "1",
            "2",
        )
        admin_digest = hashlib.sha256(b"admin-secret").hexdigest()
        assert record["actor"] == f"token:{admin_digest[:8]}"  # who, without the secret
        assert aliases == {"champion": "2"}
        # the new champion says what it replaced (what a restore goes back to), before its alias
        assert writes[:2] == [
            ("vtag", "2", "driftloop.replaced_version", "1"),
            ("set_alias", "champion", "2"),
        ]
        assert record["replaced_version"] == "1"
        audit = client.get("/admin/audit", headers=ADMIN).json()
        assert [a["action"] for a in audit] == ["promote"]


def test_unexpected_error_is_a_logged_500(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    app = _app(tmp_path)

    async def boom() -> None:
        raise RuntimeError("secret detail")

    app.add_api_route("/boom", boom)
    with TestClient(app, raise_server_exceptions=False) as client, caplog.at_level(logging.ERROR):
        r = client.get("/boom")
    assert _error(r, 500) == "internal server error (RuntimeError)"
    assert "unexpected error on GET /boom" in caplog.text


# -- OpenAPI -----------------------------------------------------------------------------------
BODY_MODELS: dict[str, type[BaseModel]] = {
    m.__name__: m
    for m in (InferenceRequest, FeedbackRequest, WeightRequest, ActionRequest, RestoreRequest)
}


def test_openapi_documents_every_route_error_and_body(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    paths = doc["paths"]
    expected = {
        "/v2": {"get"},
        "/v2/health/live": {"get"},
        "/v2/health/ready": {"get"},
        "/v2/health/replica": {"get"},
        "/v2/models/{name}": {"get"},
        "/v2/models/{name}/versions/{version}": {"get"},
        "/v2/models/{name}/ready": {"get"},
        "/v2/models/{name}/versions/{version}/ready": {"get"},
        "/v2/models/{name}/infer": {"post"},
        "/v2/models/{name}/versions/{version}/infer": {"post"},
        "/v2/models/{name}/feedback": {"post"},
        "/v2/models/{name}/lineage/{lineage_id}": {"get"},
        "/metrics": {"get"},
        "/admin/state": {"get"},
        "/admin/audit": {"get"},
        "/admin/weight": {"post"},
        "/admin/promote": {"post"},
        "/admin/rollback": {"post"},
        "/admin/restore": {"post"},
    }
    assert {p: set(ops) for p, ops in paths.items()} == expected
    schemas = doc["components"]["schemas"]
    assert {*BODY_MODELS, "ErrorResponse", "InferenceResponse"} <= set(schemas)
    assert doc["components"]["securitySchemes"]["bearer"] == {"type": "http", "scheme": "bearer"}
    infer = paths["/v2/models/{name}/infer"]["post"]
    body = infer["requestBody"]["content"]["application/json"]
    assert body["schema"] == {"$ref": "#/components/schemas/InferenceRequest"}
    assert infer["responses"]["400"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorResponse"
    }
    assert {"bearer": []} in infer["security"]
    assert "security" not in paths["/v2/health/ready"]["get"]
    assert "security" not in paths["/v2/health/replica"]["get"]
    replica = client.get("/v2/health/replica")
    assert replica.status_code in (200, 503)
    assert set(replica.json()) == {"ready", "reason"}
    assert replica.json()["ready"] is (replica.status_code == 200)
    assert client.get("/docs").status_code == 200


def test_openapi_example_bodies_are_valid(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    checked = 0
    served: set[str] = set()
    for path, ops in paths.items():
        for op in ops.values():
            content = op.get("requestBody", {}).get("content", {}).get("application/json")
            if content is None:
                continue
            model = BODY_MODELS[content["schema"]["$ref"].rsplit("/", 1)[-1]]
            assert content["examples"], f"{path} documents no example"
            for example in content["examples"].values():
                model.model_validate(example["value"])
                checked += 1
                if model in (InferenceRequest, FeedbackRequest):  # the core accepts them too
                    url = path.replace("{name}", MODEL).replace("{version}", "1")
                    token = FEEDBACK if model is FeedbackRequest else PREDICT
                    body = dict(example["value"])
                    if body.get("id") in served:  # a reused id would make its labels ambiguous
                        body["id"] = f"{body['id']}-{len(served)}"
                    served.add(body.get("id", ""))
                    r = _post(client, url, body, token)
                    assert r.status_code == 200, (path, r.text)
    assert checked >= 6


def _sync_calls(dependant: Any, seen: set[int] | None = None) -> list[str]:
    """Names of plain-``def`` callables in a route's dependency tree (FastAPI runs each in its
    thread pool: one thread hop per request each)."""
    seen = set() if seen is None else seen
    out = []
    for dep in dependant.dependencies:
        call = dep.call
        if id(call) in seen:
            continue
        seen.add(id(call))
        target = call if inspect.isfunction(call) else type(call).__call__
        if not inspect.iscoroutinefunction(target):
            out.append(getattr(call, "__qualname__", repr(call)))
        out.extend(_sync_calls(dep, seen))
    return out


def test_routes_and_their_dependencies_never_hop_to_the_thread_pool(tmp_path: Path) -> None:
    """A plain ``def`` dependency halved throughput and put the 500 req/s p99 above 100 ms
    (benchmarks/serving.py): every route and every dependency must be ``async def``."""
    routes = list(_api_routes(_app(tmp_path).routes))
    assert len(routes) >= 15  # every route of the API was seen
    found = {}
    for r in routes:
        sync = _sync_calls(r.dependant)
        if not inspect.iscoroutinefunction(r.endpoint):
            sync.append(r.endpoint.__qualname__)
        if sync:
            found[r.path] = sync
    assert found == {}


def _api_routes(routes: Any) -> Iterator[APIRoute]:
    """The APIRoutes of an app, also those of included routers (FastAPI wraps an included
    router; ``original_router`` is the one the route module built)."""
    for r in routes:
        if isinstance(r, APIRoute):
            yield r
        elif hasattr(r, "original_router"):
            yield from _api_routes(r.original_router.routes)


# -- bounded, well-formed requests (issue 11) ------------------------------------------------
def _dev_app(state: Path, **serving: Any) -> FastAPI:
    """An app with auth off (development on loopback), the way a developer runs it."""

    def snapshot(settings: Settings, name: str) -> RegistrySnapshot:
        return RegistrySnapshot(name, "1", None, 0, None)

    settings = Settings(
        state_dir=state,
        mlflow={"registered_model": MODEL},
        serving={"reconcile_interval_s": 60.0, "auth": {"enabled": False}, **serving},
    )
    return create_app(settings, loader=_load, feature_source=InMemoryFeatures(), snapshot=snapshot)


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; b=x", "json"],
)
@pytest.mark.parametrize(
    ("path", "headers"),
    [
        (f"/v2/models/{MODEL}/infer", PREDICT),
        (f"/v2/models/{MODEL}/versions/1/infer", PREDICT),
        (f"/v2/models/{MODEL}/feedback", FEEDBACK),
        ("/admin/weight", ADMIN),
        ("/admin/promote", ADMIN),
        ("/admin/rollback", ADMIN),
    ],
)
def test_a_post_not_declared_json_is_415(
    client: TestClient, path: str, headers: dict[str, str], content_type: str | None
) -> None:
    sent = headers if content_type is None else headers | {"Content-Type": content_type}
    r = client.post(path, content=orjson.dumps(features_request(1)), headers=sent)
    assert "Content-Type must be application/json" in _error(r, 415)


def test_json_with_a_charset_is_accepted(client: TestClient) -> None:
    headers = PREDICT | {"Content-Type": "Application/JSON; charset=utf-8"}
    r = client.post(
        f"/v2/models/{MODEL}/infer", content=orjson.dumps(features_request(1)), headers=headers
    )
    assert r.status_code == 200, r.text


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with TestClient(_dev_app(tmp_path_factory.mktemp("api-dev"))) as dev_client:
        yield dev_client


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.1:8000", "localhost:1", "[::1]:8000"])
def test_auth_off_serves_loopback_host_names(dev: TestClient, host: str) -> None:
    headers = {"Host": host, "Content-Type": "application/json"}
    r = dev.post(
        f"/v2/models/{MODEL}/infer", content=orjson.dumps(features_request(1)), headers=headers
    )
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", f"/v2/models/{MODEL}/infer"),
        ("POST", "/admin/promote"),
        ("GET", "/admin/state"),
        ("GET", f"/v2/models/{MODEL}"),
        ("GET", "/metrics"),
    ],
)
@pytest.mark.parametrize("host", ["evil.example", "evil.example:8000", "127.0.0.1.nip.io", ""])
def test_auth_off_refuses_other_host_names_dns_rebinding(
    dev: TestClient, method: str, path: str, host: str
) -> None:
    headers = {"Host": host, "Content-Type": "application/json"}
    r = dev.request(method, path, content=orjson.dumps({}), headers=headers)
    assert "is not served" in _error(r, 403)


def test_auth_on_serves_any_host_name(client: TestClient) -> None:
    """With auth on, the token protects the API; the name it is reached by is not checked
    (ingress, Service DNS, pod IP)."""
    headers = PREDICT | {"Host": "driftloop-serving.ns.svc", "Content-Type": "application/json"}
    r = client.post(
        f"/v2/models/{MODEL}/infer", content=orjson.dumps(features_request(1)), headers=headers
    )
    assert r.status_code == 200, r.text


def test_rate_limit_answers_429_with_retry_after_and_counts(tmp_path: Path) -> None:
    settings = _settings(tmp_path).model_copy(deep=True)
    settings.serving.rate_limit_per_s = 0.01  # one token per 100 s: no refill during the test
    settings.serving.rate_limit_burst = 3

    def snapshot(settings: Settings, name: str) -> RegistrySnapshot:
        return RegistrySnapshot(name, "1", None, 0, None)

    app = create_app(settings, loader=_load, feature_source=InMemoryFeatures(), snapshot=snapshot)
    url = f"/v2/models/{MODEL}/infer"
    with TestClient(app) as limited:
        ok = [_post(limited, url, features_request(1)).status_code for _ in range(3)]
        assert ok == [200, 200, 200]
        r = _post(limited, url, features_request(1))
        assert "rate limit" in _error(r, 429)
        assert int(r.headers["Retry-After"]) >= 1
        assert limited.get("/admin/audit", headers=ADMIN).status_code == 200  # its own bucket
        assert _post(limited, url, features_request(1), ADMIN).status_code == 200
        text = limited.get("/metrics").text
        assert "driftloop_rate_limited_total 1.0" in text
        assert 'driftloop_rejected_requests_total{status="429"} 1.0' in text


def test_rate_limit_zero_is_off(tmp_path: Path) -> None:
    with TestClient(_dev_app(tmp_path, rate_limit_per_s=0, rate_limit_burst=1)) as dev:
        headers = {"Host": "127.0.0.1", "Content-Type": "application/json"}
        body = orjson.dumps(features_request(1))
        codes = {
            dev.post(f"/v2/models/{MODEL}/infer", content=body, headers=headers).status_code
            for _ in range(5)
        }
        assert codes == {200}


def test_a_chunked_body_above_the_limit_is_413(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"inputs": [], "pad": "'
        for _ in range(MAX_BODY // 10_000 + 5):
            yield b"x" * 10_000
        yield b'"}'

    headers = PREDICT | {"Content-Type": "application/json"}
    r = client.post(f"/v2/models/{MODEL}/infer", content=chunks(), headers=headers)
    assert "counted while streaming" in _error(r, 413)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (features_request(1, request_id="r" * 129), "id has 129 characters"),
        (features_request(1, routing_key="k" * 129), "routing_key has 129 characters"),
        (
            {
                "inputs": [
                    {"name": f"n{i}", "shape": [1], "datatype": "FP64", "data": [1]}
                    for i in range(2000)
                ]
            },
            "more than 192 JSON objects",
        ),
        (
            orjson.dumps(features_request(2)).replace(
                b"[200.0,500.0]", b"[200.0,1" + b"0" * 400 + b"]"
            ),
            "'distance' holds a number beyond FP64 range at row 1",
        ),
    ],
)
def test_oversized_fields_are_400(client: TestClient, body: Any, message: str) -> None:
    assert message in _error(_post(client, f"/v2/models/{MODEL}/infer", body), 400)


def test_a_departure_out_of_range_is_400_naming_the_row(client: TestClient) -> None:
    body = flight_request(2)
    when = next(t for t in body["inputs"] if t["name"] == "scheduled_departure")
    when["data"][1] = "9999-12-31T23:59:00-05:00"
    r = _post(client, f"/v2/models/{MODEL}/infer", body)
    assert "'scheduled_departure' holds '9999-12-31T23:59:00-05:00' at row 1" in _error(r, 400)


# -- one caller cannot stall or exhaust the replica -------------------------------------------
async def _raw_post(
    app: FastAPI, path: str, headers: dict[str, str], body: bytes, stall: bool
) -> tuple[int, dict[str, Any]]:
    """POST through the ASGI interface (the TestClient reads a streamed body whole before
    the app sees it): ``body`` arrives, then, with ``stall``, nothing more ever does."""
    pending = [body]

    async def receive() -> dict[str, Any]:
        if pending:
            return {"type": "http.request", "body": pending.pop(), "more_body": stall}
        await asyncio.Event().wait()  # a client that stopped sending
        raise AssertionError("unreachable")

    messages: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in (headers | JSON).items()],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    await app(scope, receive, send)
    start = next(m for m in messages if m["type"] == "http.response.start")
    raw = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    return start["status"], orjson.loads(raw)


def test_slow_bodies_get_408_and_one_caller_may_stream_only_a_few_at_once(
    tmp_path: Path,
) -> None:
    """Step 6 of serving.routes.deps: the body deadline frees a slow upload's memory and
    connection; a caller above its in-flight bodies gets 429 at once while others are served."""
    app = _app(tmp_path, body_timeout_s=1.5, max_body_reads_per_caller=2)
    infer = f"/v2/models/{MODEL}/infer"
    half = orjson.dumps(features_request(1))[:20]
    whole = orjson.dumps(features_request(1))
    with TestClient(app) as slow_client:
        reads = app.state.services.body_reads

        async def scenario() -> list[tuple[int, dict[str, Any]]]:
            stalled = [
                asyncio.ensure_future(_raw_post(app, infer, PREDICT, half, stall=True))
                for _ in range(2)
            ]
            for _ in range(500):  # both are being received (a bound, not a timing)
                if reads.total() == 2:
                    break
                await asyncio.sleep(0.002)
            third = await _raw_post(app, infer, PREDICT, whole, stall=False)
            other = await _raw_post(app, infer, ADMIN, whole, stall=False)  # another caller
            return [third, other, *await asyncio.gather(*stalled)]

        third, other, *slow = slow_client.portal.call(scenario)
        assert third[0] == 429, third
        assert "request bodies of this caller are still being received" in third[1]["error"]
        assert other[0] == 200, other
        for status, body in slow:
            assert status == 408, body
            assert body["error"].startswith("request body not received within 1.5 s")
        assert reads.total() == 0  # every slot given back
        assert slow_client.post(infer, content=whole, headers=PREDICT | JSON).status_code == 200
        metrics = slow_client.get("/metrics").text
        assert 'driftloop_rejected_requests_total{status="408"} 2.0' in metrics


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (
            b'{"inputs": [{"name": "distance", "shape": [1], "datatype": "FP64", "data": ['
            + b",".join([b"[]"] * 10_000)
            + b"]}]}",
            413,
            "JSON arrays",
        ),
        (
            b'{"inputs": [{"name": "distance", "shape": [1], "datatype": "FP64", "data": ['
            + b",".join([b"{}"] * 1000)
            + b"]}]}",
            400,
            "JSON objects",
        ),
        (
            orjson.dumps(features_request(1) | {"parameters": {f"p{i}": i for i in range(40)}}),
            400,
            "more parameters than the limit of 32",
        ),
    ],
    ids=["empty lists", "empty objects", "parameters"],
)
def test_container_heavy_bodies_are_refused_before_parsing(
    client: TestClient, body: bytes, status: int, message: str
) -> None:
    assert message in _error(_post(client, f"/v2/models/{MODEL}/infer", body), status)


def test_a_reused_request_id_gets_409_for_its_labels_and_nothing_is_stored(
    client: TestClient,
) -> None:
    infer, feedback = f"/v2/models/{MODEL}/infer", f"/v2/models/{MODEL}/feedback"
    assert _post(client, infer, features_request(1, request_id="reused-1")).status_code == 200
    assert _post(client, infer, features_request(9, request_id="reused-1")).status_code == 200
    for body in (
        {"request_id": "reused-1", "labels": [1]},
        {"prediction_ids": ["reused-1:0", "reused-1:8"], "labels": [1, 0]},
    ):
        message = _error(_post(client, feedback, body, FEEDBACK), 409)
        assert message.startswith("request id 'reused-1' was used by more than one request")
    assert _post(client, infer, features_request(1, request_id="unique-1")).status_code == 200
    ok = _post(client, feedback, {"request_id": "unique-1", "labels": [1]}, FEEDBACK)
    assert ok.json() == {"accepted": 1, "conflicts": 0}
    settings = client.app.state.services.settings  # type: ignore[attr-defined]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the label after the refused ones is on disk ...
        stored = read_feedback(settings)
        if not stored.empty and "unique-1" in set(stored["request_id"]):
            break
        time.sleep(0.05)
    assert "unique-1" in set(stored["request_id"])
    assert "reused-1" not in set(stored["request_id"])  # ... and the refused ones are not
    text = client.get("/metrics").text
    assert 'driftloop_feedback_rejected_total{reason="ambiguous_request_id"} 2.0' in text
