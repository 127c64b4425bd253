"""A real ``python -m serving`` (uvicorn on 127.0.0.1) against the real MLflow server: every
version answers ``is_late`` at its own stored decision threshold (tag ``driftloop.threshold``),
says so in the response parameters, and falls back to 0.5 (source ``default``) without one;
champion, pinned version and shadow copy alike. ``POST /admin/restore`` (admin tokens only) sets
the champion back to the one it replaced, audited in the anchored chain; bad input is a 4xx
with ``{"error": ...}``."""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pandas as pd
import pytest
from polling import wait_for

from driftloop.data.capture import read_predictions
from driftloop.registry import audit
from driftloop.registry.client import THRESHOLD_TAG, registry_snapshot
from driftloop.registry.integrity import register_verified_version
from driftloop.registry.promotion import (
    assign_alias_after_gate,
    promote,
    read_audit,
    set_mode,
    set_weight,
    start_rollout,
)
from driftloop.schema import MODEL_INPUT_COLUMNS
from driftloop.settings import Settings
from serving import codec
from serving.examples import ROW

pytestmark = pytest.mark.integration

ADMIN = {"Authorization": "Bearer admin-secret"}
PREDICT = {"Authorization": "Bearer predict-secret"}
AUTH = {
    "enabled": True,
    "admin_tokens": ["admin-secret"],
    "predict_tokens": ["predict-secret"],
}
#: the "good" fake model's P(late) at distance 1000, 12 o'clock: sigmoid(-1) = 0.269
P_ROW = 1.0 / (1.0 + math.exp(1.0))


def _row_request(request_id: str) -> dict[str, Any]:
    row = {c: ROW[c] for c in MODEL_INPUT_COLUMNS} | {"distance": 1000.0, "dep_hour": 12.0}
    return codec.request_body(pd.DataFrame([row]), request_id=request_id)


def _version(
    logged_models: dict[str, str], settings: Settings, threshold: str | None = None
) -> str:
    tags = {"kind": "good"} | ({THRESHOLD_TAG: threshold} if threshold is not None else {})
    return register_verified_version(logged_models["good"], None, tags, settings).version


def _post(url: str, body: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
    return httpx.post(url, json=body, headers=headers, timeout=30)


def _answer(response: httpx.Response) -> tuple[float, int, dict[str, Any]]:
    assert response.status_code == 200, response.text
    out = response.json()
    by_name = {o["name"]: o["data"] for o in out["outputs"]}
    return by_name["late_probability"][0], by_name["is_late"][0], out["parameters"]


def test_each_version_decides_at_its_own_stored_threshold(
    serving_settings: Callable[..., Settings],
    logged_models: dict[str, str],
    server: Callable[[Settings], Any],
) -> None:
    settings = serving_settings(serving={"auth": AUTH})
    tuned = _version(logged_models, settings, threshold="0.2")
    older = _version(logged_models, settings)  # registered before thresholds were stored
    assign_alias_after_gate(tuned, "champion", "test", settings=settings)
    assign_alias_after_gate(older, "challenger", "test", settings=settings)
    set_weight(100, "test", "shadow every request", settings)
    set_mode("shadow", "test", "the challenger scores a copy", settings)
    proc = server(settings)
    wait_for(lambda: httpx.get(f"{proc.url}/v2/health/ready").json()["challenger"] == older)
    name = settings.mlflow.registered_model

    rid = f"thr-{uuid.uuid4().hex[:6]}"
    p, is_late, params = _answer(
        _post(f"{proc.url}/v2/models/{name}/infer", _row_request(rid), PREDICT)
    )
    assert p == pytest.approx(P_ROW)  # 0.27: late at 0.2, not at 0.5
    assert is_late == 1
    assert params.pop("lineage_id")  # the answering version's lineage (serving.handles)
    assert params == {"variant": "champion", "threshold": 0.2, "threshold_source": "version"}

    pinned = f"{proc.url}/v2/models/{name}/versions/{older}/infer"
    p, is_late, params = _answer(_post(pinned, _row_request(f"{rid}-old"), PREDICT))
    assert p == pytest.approx(P_ROW)
    assert is_late == 0
    assert params["threshold"] == 0.5
    assert params["threshold_source"] == "default"

    meta = httpx.get(f"{proc.url}/v2/models/{name}", headers=PREDICT).json()
    assert meta["parameters"]["thresholds"] == {
        tuned: {"threshold": 0.2, "source": "version"},
        older: {"threshold": 0.5, "source": "default"},
    }

    def captured() -> dict[str, int] | None:
        log = read_predictions(settings)
        rows = log[log["request_id"] == rid]
        if len(rows) < 2:  # the answer and its shadow copy
            return None
        return {str(r.model_version): int(r.predicted_label) for r in rows.itertuples()}

    # the inference log records each version's own decision, the shadow copy's included
    assert wait_for(captured, timeout=15, what="capture rows") == {tuned: 1, older: 0}


def test_admin_restore_sets_the_replaced_champion_back_for_admins_only(
    serving_settings: Callable[..., Settings],
    logged_models: dict[str, str],
    server: Callable[[Settings], Any],
) -> None:
    settings = serving_settings(serving={"auth": AUTH})
    v1 = _version(logged_models, settings, threshold="0.2")
    v2 = _version(logged_models, settings, threshold="0.4")
    assign_alias_after_gate(v1, "champion", "test", settings=settings)
    assign_alias_after_gate(v2, "challenger", "test", settings=settings)
    start_rollout(10, "rollout", settings)
    promote("rollout", "canary passed", None, settings)
    proc = server(settings)
    wait_for(lambda: httpx.get(f"{proc.url}/v2/health/ready").json()["champion"] == v2)
    url = f"{proc.url}/admin/restore"
    n = len(read_audit(settings))

    denied = _post(url, {"reason": "not mine to decide"}, PREDICT)
    assert denied.status_code == 403
    assert "admin" in denied.json()["error"]
    assert _post(url, {}, {}).status_code == 401
    bad = _post(url, {"to": "latest"}, ADMIN)
    assert bad.status_code == 400
    assert "to" in bad.json()["error"]
    assert _post(url, {"version": v1}, ADMIN).status_code == 400  # unknown field
    never = _post(url, {"to": "999"}, ADMIN)
    assert never.status_code == 409
    assert "was never champion" in never.json()["error"]
    assert registry_snapshot(settings).champion == v2
    assert len(read_audit(settings)) == n  # refusals write nothing

    restored = _post(url, {"reason": "v2 misbehaves"}, ADMIN)
    assert restored.status_code == 200, restored.text
    record = restored.json()
    assert (record["action"], record["from_version"], record["to_version"]) == ("restore", v2, v1)
    assert record["actor"].startswith("token:")
    assert record["reason"] == "v2 misbehaves"
    # this replica reconciled at once: the restored champion answers, at its own threshold
    assert httpx.get(f"{proc.url}/v2/health/ready").json()["champion"] == v1
    name = settings.mlflow.registered_model
    rid = f"rst-{uuid.uuid4().hex[:6]}"
    _, is_late, params = _answer(
        _post(f"{proc.url}/v2/models/{name}/infer", _row_request(rid), PREDICT)
    )
    assert (is_late, params["threshold"]) == (1, 0.2)
    assert read_audit(settings)[-1]["hash"] == record["hash"]
    anchor, why = audit.read_anchor(settings)
    assert anchor is not None, why
    check = audit.verify(settings, anchor=anchor)
    assert check.intact, check.summary()
    assert check.anchored, check.summary()

    again = _post(url, {}, ADMIN)  # v1 replaced no champion
    assert again.status_code == 409
    assert "nothing to restore to" in again.json()["error"]
