"""The documentation pages and the operations dashboard of a real ``python -m serving`` (uvicorn
on 127.0.0.1, auth on) with a real MLflow server and a real Feast online store (January 2013):

* ``/docs`` and ``/redoc`` reference only this server's assets, which answer 200, and allow
  nothing else (Content-Security-Policy);
* every request example of the OpenAPI document validates against its schema and a real POST
  of each succeeds (both inference forms, then both feedback forms);
* every PromQL query of the Grafana dashboard names a metric the server exports (scraped from
  /metrics after traffic and after the loop recorded a monitor verdict and retrains);
* ``/dashboard`` and ``/dashboard/figures`` answer 200 with those figures, and ``driftloop
  dashboard`` prints them.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from datasets import partition_flights, partition_planes, partition_weather
from polling import wait_for

from driftloop.embedded.services import free_port
from driftloop.loop.decisions import decisions_path, record_monitor
from driftloop.loop.ledger import claim_retrain, finish_retrain, ledger_path
from driftloop.monitoring.judge import DriftVerdict, JudgeInputs
from driftloop.registry.integrity import register_verified_version
from driftloop.registry.promotion import assign_alias_after_gate
from driftloop.settings import Settings, use_settings
from serving.loopstate import decisions_file, retrains_file
from serving.process import ServerProcess
from serving.schemas import FeedbackRequest, InferenceRequest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
ADMIN = {"Authorization": "Bearer admin-secret"}
METRIC = re.compile(r"\bdriftloop_[a-z0-9_]+")


class Assets(HTMLParser):
    """Every URL a page loads: src of scripts and images, href of stylesheets and icons."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag in ("script", "img") and found.get("src"):
            self.urls.append(str(found["src"]))
        if tag == "link" and found.get("href"):
            self.urls.append(str(found["href"]))


def _feature_store(settings: Settings) -> None:
    """A real online store over the first days of January 2013 (N14228 flew on Jan 1)."""
    from driftloop.features.config import feature_store
    from driftloop.features.repo import apply, write_sources
    from driftloop.features.store import build_tables, materialize

    flights = partition_flights(["2013-01"])
    flights = flights[flights["scheduled_departure"] < "2013-01-04"]
    tables = build_tables(flights, partition_weather(["2013-01"]), partition_planes(), settings)
    write_sources(tables, settings)
    store = feature_store(settings)
    apply(settings, store)
    materialize("2013-01-04T00:00", settings, store)


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, mlflow_server: str, logged_models: dict[str, str]
) -> Iterator[tuple[Settings, httpx.Client]]:
    settings = Settings(
        state_dir=tmp_path_factory.mktemp("docs-dashboard"),
        log_level="WARNING",
        mlflow={
            "tracking_uri": mlflow_server,
            "registered_model": f"docs-{uuid.uuid4().hex[:6]}",
            "experiment": "serving-tests",  # where the fake models are logged (conftest)
        },
        serving={
            "port": free_port(),
            "reconcile_interval_s": 0.3,
            "capture_flush_s": 0.1,
            "auth": {"enabled": True, "admin_tokens": ["admin-secret"]},
        },
    )
    use_settings(settings)
    _feature_store(settings)
    v1 = register_verified_version(logged_models["good"], None, {}, settings).version
    assign_alias_after_gate(v1, "champion", "test fixture", settings=settings)
    with ServerProcess(settings) as proc, httpx.Client(base_url=proc.url, timeout=10) as client:
        ready = lambda: client.get("/v2/health/ready").json()["online_features"]  # noqa: E731
        wait_for(ready, 120, "the online store to open")
        yield settings, client
    use_settings(None)


def _post(client: httpx.Client, path: str, body: Any) -> httpx.Response:
    headers = ADMIN | {"Content-Type": "application/json"}
    return client.post(path, content=orjson.dumps(body), headers=headers)


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_only_local_assets(
    served: tuple[Settings, httpx.Client], page: str
) -> None:
    _, client = served
    response = client.get(page)  # no token: the docs are open like /openapi.json
    assert response.status_code == 200
    parser = Assets()
    parser.feed(response.text)
    assert parser.urls, "the page loads no assets"
    for url in parser.urls:
        assert url.startswith("/"), url
        assert not url.startswith("//"), url
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert len(asset.content) > 100, url
    assert "http://" not in response.text
    assert "https://" not in response.text
    csp = response.headers["content-security-policy"]
    assert "default-src 'self'" in csp
    assert "https:" not in csp
    assert client.get("/static/../app.py").status_code == 404  # no way out of the assets


def test_examples_validate_and_post(served: tuple[Settings, httpx.Client]) -> None:
    settings, client = served
    document = client.get("/openapi.json").json()
    text = json.dumps(document)
    assert "``" not in text
    assert ":class:`" not in text
    infer = document["paths"]["/v2/models/{name}/infer"]["post"]
    (name,) = [p for p in infer["parameters"] if p["name"] == "name"]
    model = name["schema"]["default"]
    assert model == settings.mlflow.registered_model  # "Try it out" opens on the served model
    infer_examples = infer["requestBody"]["content"]["application/json"]["examples"]
    assert set(infer_examples) == {"flight", "features"}
    for key in ("flight", "features"):  # flight first: the feedback examples label req-1, req-2
        body = infer_examples[key]["value"]
        InferenceRequest.model_validate(body)
        response = _post(client, f"/v2/models/{model}/infer", body)
        assert response.status_code == 200, (key, response.text)
        assert response.json()["id"] == body["id"]
        assert len(response.json()["outputs"][0]["data"]) == body["inputs"][0]["shape"][0]
    feedback = document["paths"]["/v2/models/{name}/feedback"]["post"]
    feedback_examples = feedback["requestBody"]["content"]["application/json"]["examples"]
    for key, example in feedback_examples.items():
        FeedbackRequest.model_validate(example["value"])
        response = _post(client, f"/v2/models/{model}/feedback", example["value"])
        assert response.status_code == 200, (key, response.text)
        assert response.json()["accepted"] == len(example["value"]["labels"])


def _record_loop(settings: Settings) -> None:
    """What the loop records: a monitor verdict (drift share 0.45, estimated AUC 0.612) and two
    retrains, one finished and one failed, written by the loop's own functions."""
    assert decisions_file(settings) == decisions_path(settings)
    assert retrains_file(settings) == ledger_path(settings)
    model = settings.mlflow.registered_model
    inputs = JudgeInputs(
        rows=5000,
        labeled=0,
        drift_share=0.45,
        drifted_columns=["temp", "dewp"],
        estimated_auc={"estimate": 0.612, "low": 0.6, "high": 0.63},
    )
    verdict = DriftVerdict(
        status="drift",
        retrain=True,
        reasons=["estimated AUC 0.612 below KPI 0.66"],
        numbers={"kpi_auc": 0.66},
    )
    window = {"start": "2013-05-01", "end": "2013-05-08", "months": ["2013-05"]}
    record_monitor(model, "1", window, inputs, verdict, settings)
    done, _ = claim_retrain("2013-02", "2013-04", settings, model, "drift", "test", force=True)
    finish_retrain(done, {"version": "2"}, settings)
    failed, _ = claim_retrain("2013-03", "2013-05", settings, model, "drift", "test", force=True)
    finish_retrain(failed, {"error": "out of memory"}, settings, failed=True)


def test_dashboard_queries_name_exported_metrics_and_page_shows_them(
    served: tuple[Settings, httpx.Client],
) -> None:
    settings, client = served
    model = settings.mlflow.registered_model
    body = {"id": "dash-1", **_features(3)}
    assert _post(client, f"/v2/models/{model}/infer", body).status_code == 200
    assert _post(client, f"/v2/models/{model}/infer", {"inputs": 1}).status_code == 400
    _record_loop(settings)

    scrape = client.get("/metrics").text
    exported = {line.split()[0].split("{")[0] for line in scrape.splitlines() if line[:1] != "#"}
    for line in scrape.splitlines():  # families without a sample yet (no rollout decision)
        if line.startswith("# TYPE "):
            _, _, family, kind = line.split()
            exported |= {
                "counter": {family.removesuffix("_total") + "_total"},
                "histogram": {f"{family}_bucket", f"{family}_sum", f"{family}_count"},
            }.get(kind, {family})
    dashboard = json.loads((ROOT / "dashboards" / "driftloop.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 15
    named = {m for e in exprs for m in METRIC.findall(e)}
    assert named <= exported, sorted(named - exported)
    for must in (
        "driftloop_monitor_drift_share",
        "driftloop_monitor_estimated_auc",
        "driftloop_canary_weight",
        "driftloop_retrains",
        "driftloop_capture_rows_dropped_total",
    ):
        assert must in named, must
        assert must in exported, must
    assert 'driftloop_monitor_drift_share{model_version="1"} 0.45' in scrape
    assert 'driftloop_retrains{status="failed"} 1.0' in scrape

    figures = client.get("/dashboard/figures").json()
    assert figures["model"] == model
    (traffic,) = [r for r in figures["traffic"] if r["variant"] == "champion"]
    assert traffic["requests"] >= 3  # the two examples above and this one
    assert figures["monitor"][-1]["drift_share"] == 0.45
    assert figures["retrains"] == {"finished": 1, "failed": 1}
    page = client.get("/dashboard")
    assert page.status_code == 200
    for shown in ("<svg", "0.45", "0.612", "out of memory"):
        assert shown in page.text, shown
    assert "default-src 'none'" in page.headers["content-security-policy"]

    from driftloop.cli.dashboard import fetch_figures, summary

    lines = summary(fetch_figures(str(client.base_url)))
    assert any("drift share 0.45" in line and "estimated AUC 0.612" in line for line in lines)


def _features(n: int) -> dict[str, Any]:
    from serving.examples import features_request

    return features_request(n)
