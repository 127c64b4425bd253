"""Synthetic traffic (load tests, probes) is marked, served and counted, but never judged: a real
``python -m serving`` (uvicorn on 127.0.0.1, auth on) with a champion and a challenger on the
real MLflow server; requests marked by the ``X-Driftloop-Synthetic`` header or
``parameters.synthetic`` are answered, counted in ``/metrics`` with ``traffic="synthetic"`` and
captured with their mark, and the real capture files then feed the real monitor window and the
real canary evidence, which leave them out (the monitor's record counts them). Marking needs the
admin scope: a predict token asking for it gets 403 and nothing is served or stored."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from polling import wait_for
from prometheus_client.parser import text_string_to_metric_families

from driftloop.data.capture import read_predictions
from driftloop.embedded.services import free_port
from driftloop.monitoring.canary import available_requests, gather_evidence, read_rollout_frame
from driftloop.monitoring.monitor import run_monitor, window_traffic
from driftloop.registry.integrity import register_verified_version
from driftloop.registry.promotion import assign_alias_after_gate, set_weight
from driftloop.settings import Settings
from serving.examples import features_request
from serving.process import ServerProcess

pytestmark = pytest.mark.integration

EXPERIMENT = "synthetic-traffic-tests"
#: the small real pyfunc model of the serving tests (MLflow "models from code")
MODEL_CODE = Path(__file__).parents[1] / "serving" / "fake_model.py"
ADMIN_TOKEN, PREDICT_TOKEN = "admin-secret", "predict-secret"
JSON = {"Content-Type": "application/json"}
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"} | JSON
PREDICT = {"Authorization": f"Bearer {PREDICT_TOKEN}"} | JSON
LIVE, BY_HEADER, BY_PARAMETER = 6, 5, 4  # requests of 2 rows each


@dataclass
class Traffic:
    settings: Settings
    url: str
    champion: str
    challenger: str
    since: datetime
    answers: dict[str, httpx.Response] = field(default_factory=dict)


def _log_models(settings: Settings) -> dict[str, str]:
    import mlflow
    from mlflow import MlflowClient

    client = MlflowClient(settings.mlflow.uri)
    found = client.get_experiment_by_name(EXPERIMENT)
    exp_id = found.experiment_id if found else client.create_experiment(EXPERIMENT)
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(settings.mlflow.uri)
    uris = {}
    try:
        for kind, bias in (("good", -1.0), ("better", -0.9)):
            with mlflow.start_run(experiment_id=exp_id, run_name=f"fake-{kind}"):
                info = mlflow.pyfunc.log_model(
                    name="model",
                    python_model=str(MODEL_CODE),
                    model_config={"bias": bias},
                    pip_requirements=["mlflow"],
                )
            uris[kind] = info.model_uri
    finally:
        mlflow.set_tracking_uri(previous)
    return uris


def _post(url: str, body: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
    return httpx.post(url, content=orjson.dumps(body), headers=headers, timeout=10)


@pytest.fixture(scope="module")
def traffic(tmp_path_factory: pytest.TempPathFactory, mlflow_server: str) -> Iterator[Traffic]:
    """Champion v1, challenger v2 on 100 % canary weight; live, synthetic and refused requests
    sent once for the module."""
    settings = Settings(
        state_dir=tmp_path_factory.mktemp("synthetic"),
        log_level="WARNING",
        mlflow={
            "tracking_uri": mlflow_server,
            "registered_model": f"synthetic-{uuid.uuid4().hex[:6]}",
            "experiment": EXPERIMENT,  # serving trusts only runs of its experiment
        },
        serving={
            "port": free_port(),
            "reconcile_interval_s": 0.3,
            "capture_flush_s": 0.1,
            "auth": {
                "enabled": True,
                "admin_tokens": [ADMIN_TOKEN],
                "predict_tokens": [PREDICT_TOKEN],
            },
        },
        monitoring={"min_rows": 1000},  # the window is too small to judge: its record is the point
    )
    uris = _log_models(settings)
    v1 = register_verified_version(uris["good"], None, {}, settings).version
    assign_alias_after_gate(v1, "champion", "test fixture", settings=settings)
    v2 = register_verified_version(uris["better"], None, {}, settings).version
    assign_alias_after_gate(v2, "challenger", "test fixture", settings=settings)
    set_weight(100, "test", "test fixture", settings)
    since = datetime.now(UTC) - timedelta(seconds=1)
    with ServerProcess(settings) as proc:
        wait_for(lambda: httpx.get(f"{proc.url}/v2/health/ready").json()["challenger"] == v2)
        infer = f"{proc.url}/v2/models/{settings.mlflow.registered_model}/infer"
        run = Traffic(settings, proc.url, v1, v2, since)
        for i in range(LIVE):
            rid = f"live-{i}"
            run.answers[rid] = _post(infer, features_request(2, request_id=rid), PREDICT)
        for i in range(BY_HEADER):
            rid = f"header-{i}"
            marked = ADMIN | {"X-Driftloop-Synthetic": "load-test"}
            run.answers[rid] = _post(infer, features_request(2, request_id=rid), marked)
        for i in range(BY_PARAMETER):
            rid = f"param-{i}"
            body = features_request(2, request_id=rid) | {"parameters": {"synthetic": True}}
            run.answers[rid] = _post(infer, body, ADMIN)
        forbidden = PREDICT | {"X-Driftloop-Synthetic": "load-test"}
        run.answers["forbidden-header"] = _post(
            infer, features_request(2, request_id="forbidden-header"), forbidden
        )
        body = features_request(2, request_id="forbidden-param") | {
            "parameters": {"synthetic": "probe"}
        }
        run.answers["forbidden-param"] = _post(infer, body, PREDICT)
        body = features_request(2, request_id="bad-mark") | {"parameters": {"synthetic": "a b"}}
        run.answers["bad-mark"] = _post(infer, body, ADMIN)
        expected = 2 * (LIVE + BY_HEADER + BY_PARAMETER)
        wait_for(
            lambda: (
                len(read_predictions(settings, include_synthetic=True, with_labels=False))
                >= expected
            ),
            timeout=15,
        )
        run.answers["metrics"] = httpx.get(f"{proc.url}/metrics")
        yield run


def test_synthetic_requests_are_served_and_say_so(traffic: Traffic) -> None:
    for rid, answer in traffic.answers.items():
        if rid.startswith(("live", "header", "param")):
            assert answer.status_code == 200, (rid, answer.text)
            out = answer.json()
            assert len(out["outputs"][0]["data"]) == 2
            assert out["model_version"] == traffic.challenger  # 100 % canary: routed as usual
    assert "synthetic" not in traffic.answers["live-0"].json()["parameters"]
    assert traffic.answers["header-0"].json()["parameters"]["synthetic"] == "load-test"
    assert traffic.answers["param-0"].json()["parameters"]["synthetic"] == "synthetic"


def test_only_the_admin_scope_may_mark_traffic_synthetic(traffic: Traffic) -> None:
    for rid in ("forbidden-header", "forbidden-param"):
        answer = traffic.answers[rid]
        assert answer.status_code == 403, answer.text
        assert "needs the admin scope" in answer.json()["error"]
    bad = traffic.answers["bad-mark"]
    assert bad.status_code == 400
    assert "parameters.synthetic must be true or a name" in bad.json()["error"]
    log = read_predictions(traffic.settings, include_synthetic=True, with_labels=False)
    assert not log["request_id"].isin(["forbidden-header", "forbidden-param", "bad-mark"]).any()


def test_metrics_count_synthetic_requests_under_their_own_label(traffic: Traffic) -> None:
    answer = traffic.answers["metrics"]
    assert answer.status_code == 200, answer.text
    requests: dict[str, float] = {}
    rows: dict[str, float] = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            if sample.name == "driftloop_inference_requests_total":
                key = sample.labels["traffic"]
                requests[key] = requests.get(key, 0) + sample.value
            if sample.name == "driftloop_inference_rows_total":
                key = sample.labels["traffic"]
                rows[key] = rows.get(key, 0) + sample.value
    assert requests == {"live": LIVE, "synthetic": BY_HEADER + BY_PARAMETER}
    assert rows == {"live": 2 * LIVE, "synthetic": 2 * (BY_HEADER + BY_PARAMETER)}


def test_capture_stores_the_mark_and_readers_leave_it_out(traffic: Traffic) -> None:
    everything = read_predictions(traffic.settings, include_synthetic=True, with_labels=False)
    marks = everything.groupby(everything["request_id"].str.split("-").str[0])["synthetic"]
    assert set(marks.get_group("header")) == {"load-test"}
    assert set(marks.get_group("param")) == {"synthetic"}
    assert marks.get_group("live").isna().all()
    judged = read_predictions(traffic.settings, with_labels=False)
    assert sorted(set(judged["request_id"])) == [f"live-{i}" for i in range(LIVE)]


def test_the_monitor_window_leaves_synthetic_rows_out_and_records_them(traffic: Traffic) -> None:
    end = datetime.now(UTC) + timedelta(seconds=1)
    frame, marks = window_traffic(traffic.settings, traffic.since, end, traffic.challenger)
    assert set(frame["request_id"]) == {f"live-{i}" for i in range(LIVE)}
    assert marks == {"load-test": 2 * BY_HEADER, "synthetic": 2 * BY_PARAMETER}

    result = run_monitor(
        traffic.settings, traffic.since, end, model_version=traffic.challenger, log_mlflow=False
    )
    record = result.to_dict()
    assert record["rows"] == 2 * LIVE
    assert record["synthetic_rows"] == 2 * (BY_HEADER + BY_PARAMETER)
    assert record["synthetic_marks"] == marks
    assert record["verdict"]["status"] == "insufficient_data"
    left_out = f"({2 * (BY_HEADER + BY_PARAMETER)} synthetic rows left out)"
    assert left_out in " ".join(result.verdict.reasons)


def test_canary_evidence_leaves_synthetic_requests_out(traffic: Traffic) -> None:
    settings, v1, v2 = traffic.settings, traffic.champion, traffic.challenger
    floor = settings.rollout.latency_floor_ms
    frame = read_rollout_frame(settings, traffic.since)  # what the rollout reads
    evidence = gather_evidence(frame, v1, v2, "canary", 100, floor)
    assert evidence.routed == LIVE
    assert evidence.challenger.requests == LIVE
    assert evidence.excluded == 0
    # however a frame is read, the evidence never counts a synthetic request
    raw = read_predictions(settings, start=traffic.since, include_synthetic=True)
    assert available_requests(raw, v1, v2) == LIVE
    again = gather_evidence(raw, v1, v2, "canary", 100, floor)
    assert again.routed == LIVE
    assert again.excluded == BY_HEADER + BY_PARAMETER
