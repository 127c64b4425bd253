"""SIGTERM under load: a real ``python -m serving`` process is stopped the way Kubernetes stops a
pod while clients are sending requests; after it exits, every prediction that was acknowledged
(answered 200) is in the capture files, and no temporary file is left."""

from __future__ import annotations

import os
import signal
import threading
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest
from polling import wait_for

from driftloop.data.capture import kind_dir, read_predictions
from driftloop.settings import Settings
from serving.examples import features_request
from serving.process import ServerProcess

pytestmark = pytest.mark.integration

TOKEN = f"predict-{uuid.uuid4().hex}{uuid.uuid4().hex}"
ROWS = 20  # rows per request
CLIENTS = 4


def _client_loop(
    url: str, stop: threading.Event, acknowledged: list[str], failures: list[str]
) -> None:
    """Send requests until the server stops answering; keep the ids of those answered 200."""
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    with httpx.Client(timeout=30) as client:
        while True:
            request_id = uuid.uuid4().hex
            body = orjson.dumps(features_request(ROWS, request_id=request_id))
            try:
                r = client.post(url, content=body, headers=headers)
            except httpx.HTTPError as exc:
                failures.append(type(exc).__name__)
                if stop.is_set():
                    return  # the server is going or gone
                continue
            if r.status_code == 200:
                assert r.json()["id"] == request_id
                acknowledged.append(request_id)
            else:
                failures.append(f"HTTP {r.status_code}")
                if stop.is_set():
                    return


def _register_champion(model_uri: str, settings: Settings) -> None:
    """Register the logged fake model with its artifact hash recorded (serving refuses a
    version without one) and make it the champion."""
    from mlflow import MlflowClient

    from driftloop.registry.integrity import register_verified_version
    from driftloop.registry.promotion import assign_alias_after_gate

    model_id = model_uri.removeprefix("models:/")
    run_id = MlflowClient(settings.mlflow.uri).get_logged_model(model_id).source_run_id
    info = register_verified_version(model_uri, run_id, {}, settings)
    assign_alias_after_gate(info.version, "champion", "test fixture", settings=settings)


def test_sigterm_under_load_keeps_every_acknowledged_prediction(
    serving_settings: Callable[..., Settings], logged_models: dict[str, str]
) -> None:
    settings = serving_settings(
        serving={
            # long flush interval: at SIGTERM most rows are only in the writer's memory
            "capture_flush_s": 60.0,
            "capture_flush_rows": 1_000_000,
            "capture_shutdown_s": 20.0,
            "auth": {"enabled": True, "predict_tokens": [TOKEN]},
        }
    )
    _register_champion(logged_models["good"], settings)
    server = ServerProcess(settings).start()
    try:
        assert server.proc is not None
        infer = f"{server.url}/v2/models/{settings.mlflow.registered_model}/infer"
        stop = threading.Event()
        acknowledged: list[str] = []
        failures: list[str] = []
        clients = [
            threading.Thread(target=_client_loop, args=(infer, stop, acknowledged, failures))
            for _ in range(CLIENTS)
        ]
        for t in clients:
            t.start()
        wait_for(lambda: len(acknowledged) >= 200, timeout=120, what="200 answered requests")
        before_term = len(acknowledged)
        stop.set()
        os.kill(server.proc.pid, signal.SIGTERM)  # mid-traffic, like the kubelet
        rc = server.proc.wait(60)
        for t in clients:
            t.join(60)
        assert not any(t.is_alive() for t in clients)
    finally:
        server.stop()
    log = server.log.read_text(errors="replace")
    assert rc in (0, -signal.SIGTERM), log[-2000:]
    assert len(acknowledged) >= before_term >= 200
    captured = read_predictions(settings, with_labels=False)
    captured_ids = set(captured["request_id"])
    missing = [rid for rid in acknowledged if rid not in captured_ids]
    assert missing == [], f"{len(missing)} of {len(acknowledged)} acknowledged requests lost"
    rows: Any = captured[captured["request_id"].isin(set(acknowledged))]
    assert len(rows) == ROWS * len(acknowledged)
    leftovers = [p for p in kind_dir("predictions", settings).rglob("*") if ".tmp" in p.name]
    assert leftovers == []
