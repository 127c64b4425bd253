"""In process: the docs pages' plain-text descriptions and access, the dashboard page's access
(Host check with auth off, like /metrics), its latency quantiles, and the loop records it reads
(another model's records and broken lines are left out; a broken record never breaks
/metrics)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from driftloop.registry.client import RegistrySnapshot
from driftloop.settings import Settings
from serving.app import create_app
from serving.handles import ModelHandle
from serving.loopstate import LoopState, decisions_file, retrains_file
from serving.metrics import LIVE, SYNTHETIC, ServingMetrics
from serving.routes.dashboard import _quantile, render, traffic
from serving.routes.openapi import plain_text

MODEL = "delay"


def _app(state: Path) -> TestClient:
    settings = Settings(
        state_dir=state,
        mlflow={"registered_model": MODEL},
        serving={"reconcile_interval_s": 60.0, "auth": {"enabled": False}},
    )

    def load(name: str, version: str, settings: Settings) -> ModelHandle:
        raise AssertionError("no model is loaded by these tests")

    def snapshot(settings: Settings, name: str) -> RegistrySnapshot:
        return RegistrySnapshot(name, None, None, 0, None)

    return TestClient(create_app(settings, loader=load, snapshot=snapshot))


def test_plain_text_drops_sphinx_markup() -> None:
    text = "See :class:`serving.codec.Rows` and ``parameters.explain``::\n\n  {...}"
    assert plain_text(text) == "See serving.codec.Rows and parameters.explain:\n\n  {...}"
    assert plain_text(":func:`~serving.codec.decode`") == "serving.codec.decode"


def test_quantile_interpolates_like_prometheus() -> None:
    buckets = [(0.001, 50.0), (0.01, 90.0), (0.1, 100.0), (float("inf"), 100.0)]
    assert _quantile(0.5, buckets) == pytest.approx(0.001)
    assert _quantile(0.95, buckets) == pytest.approx(0.01 + 0.09 * 0.5)
    assert _quantile(0.5, []) is None


def test_traffic_sums_live_and_synthetic_series_of_one_version() -> None:
    """A version served both live and load-test traffic: the page shows all of it, and its
    latency quantile comes from the summed histogram (was: the last series overwrote the first)."""
    metrics = ServingMetrics()
    for _ in range(3):
        metrics.observe("1", "champion", 2, 0.0008, error=False, traffic=LIVE)
    metrics.observe("1", "champion", 5, 0.5, error=True, traffic=SYNTHETIC)
    (row,) = traffic(metrics)
    assert (row["requests"], row["errors"], row["rows"]) == (4, 1, 11)
    assert row["error_rate"] == pytest.approx(0.25)
    # 3 of 4 requests are under 1 ms: the median is too; the 0.99 quantile is in the 0.25-1 s bucket
    assert row["p50_ms"] is not None
    assert row["p50_ms"] <= 1.0
    assert row["p99_ms"] is not None
    assert row["p99_ms"] > 250.0


def test_docs_open_to_any_host_dashboard_only_to_loopback_with_auth_off(tmp_path: Path) -> None:
    client = _app(tmp_path)
    evil = {"Host": "rebound.example"}
    assert client.get("/docs", headers=evil).status_code == 200  # reveals nothing of the server
    refused = client.get("/dashboard", headers=evil)
    assert refused.status_code == 403
    assert "DNS rebinding" in refused.json()["error"]
    assert client.get("/dashboard/figures", headers=evil).status_code == 403
    local = {"Host": "127.0.0.1:8000"}
    page = client.get("/dashboard", headers=local)
    assert page.status_code == 200
    assert "no monitor window judged yet" in page.text
    assert client.get("/dashboard/figures", headers=local).json()["model"] == MODEL


def test_loop_state_reads_only_this_models_records_and_skips_broken_lines(
    tmp_path: Path,
) -> None:
    settings = Settings(state_dir=tmp_path, mlflow={"registered_model": MODEL})
    decisions = decisions_file(settings)
    decisions.parent.mkdir(parents=True)
    monitor = {
        "kind": "monitor",
        "model": MODEL,
        "created": "2026-12-01T10:00:00+00:00",
        "versions": {"judged": "3"},
        "decision": "retrain",
        "reason": "estimated AUC <b>low</b>",
        "inputs": {"judge": {"drift_share": 0.5, "estimated_auc": {"estimate": 0.6}}},
    }
    lines = [
        json.dumps(monitor),
        '{"kind": "monitor", "model": "other", "decision": "ok"}',
        '{"kind": "rollout", "model": "delay", "decis',  # a writer killed mid-line
        json.dumps({"kind": "rollout", "model": MODEL, "decision": "rollback"}),
    ]
    decisions.write_text("\n".join(lines) + "\n")
    retrains = retrains_file(settings)
    retrains.parent.mkdir(parents=True)
    started = {"id": "a", "model": MODEL, "status": "started", "requested_at": "1"}
    retrains.write_text(
        "\n".join(json.dumps(r) for r in (started, {**started, "status": "failed"})) + "\n"
    )
    figures = LoopState(settings).figures()
    assert [w.drift_share for w in figures.monitor] == [0.5]
    assert figures.monitor[0].estimated_auc == 0.6
    assert dict(figures.rollout_decisions()) == {"rollback": 1}
    assert dict(figures.retrain_states()) == {"failed": 1}  # latest state per retrain

    client = _app(tmp_path)
    local = {"Host": "localhost"}
    data = client.get("/dashboard/figures", headers=local).json()
    assert data["recent_decisions"][0]["decision"] == "retrain"
    page = render(data)
    assert "&lt;b&gt;low&lt;/b&gt;" in page  # record text is escaped
    decisions.write_text('{"kind": "monitor", "model": "delay", "inputs": 7}\n')
    assert client.get("/dashboard", headers=local).status_code == 200
    scrape = client.get("/metrics", headers=local)
    assert scrape.status_code == 200
    assert "driftloop_inference_requests" in scrape.text
