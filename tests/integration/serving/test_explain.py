"""Explanations of a real trained model served by a real ``python -m serving`` (uvicorn on
127.0.0.1) from the real MLflow server: ``parameters.explain=true`` returns one attribution per
input feature and row that sums to the prediction's difference from the baseline; without it
the response is unchanged; a bad value is a 400; every request of a sample (rate 1 here) is
explained off the request path and captured; the monitor's attribution drift of a later window
with a planted shift in one feature names that feature."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import numpy as np
import orjson
import pandas as pd
import pytest
from datasets import model_input_frame
from polling import wait_for

from driftloop.embedded.services import free_port
from driftloop.monitoring.attribution import (
    ATTR_PREFIX,
    attribution_drift,
    read_explanations,
    save_attribution_report,
)
from driftloop.registry.integrity import register_verified_version
from driftloop.registry.promotion import assign_alias_after_gate
from driftloop.schema import MODEL_INPUT_COLUMNS
from driftloop.settings import Settings, use_settings
from driftloop.training.bundle import ModelBundle
from driftloop.training.pyfunc import log_model
from driftloop.training.trainer import TrainParams, fit
from serving.codec import request_body
from serving.process import ServerProcess

pytestmark = pytest.mark.integration

#: |sum of a row's attributions - (prediction - baseline)|: Captum's convergence delta on this
#: ReLU net at 50 Gauss-Legendre steps is a few thousandths of a probability
TOLERANCE = 0.01
#: the planted shift: dense fog at every airport (visibility in miles)
SHIFTED, SHIFTED_TO = "visib", 0.25


@dataclass(frozen=True)
class Served:
    settings: Settings
    client: httpx.Client
    rows: pd.DataFrame  # held-out rows of the training month
    version: str

    @property
    def infer(self) -> str:
        return f"/v2/models/{self.settings.mlflow.registered_model}/infer"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, mlflow_server: str) -> Iterator[Served]:
    """A model trained on 5,000 January flights, logged and registered as champion, served
    with every request's explanation sampled."""
    import mlflow

    frame = model_input_frame(["2013-01"], n=6000)
    result = fit(frame.iloc[:5000], frame.iloc[5000:], TrainParams(epochs=3, batch_size=256))
    bundle = ModelBundle(result.model, result.preprocessor).calibrate(frame.iloc[5000:])
    settings = Settings(
        state_dir=tmp_path_factory.mktemp("serving-explain"),
        log_level="WARNING",
        mlflow={
            "tracking_uri": mlflow_server,
            "registered_model": f"explain-{uuid.uuid4().hex[:6]}",
            "experiment": "serving-tests",  # serving trusts runs of its experiment only
        },
        serving={
            "port": free_port(),
            "reconcile_interval_s": 0.3,
            "capture_flush_s": 0.1,
            "explain_sample_rate": 1.0,
            "explain_max_rows": 100,
        },
        monitoring={"attribution_shift": 0.05, "attribution_min_rows": 50},
    )
    use_settings(settings)
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(mlflow_server)
    mlflow.set_experiment("serving-tests")
    try:
        with mlflow.start_run() as run:
            info = log_model(bundle, frame.iloc[:5])
    finally:
        mlflow.set_tracking_uri(previous)
    version = register_verified_version(info.model_uri, run.info.run_id, {}, settings).version
    assign_alias_after_gate(version, "champion", "test fixture", settings=settings)
    with (
        ServerProcess(settings) as proc,
        httpx.Client(base_url=proc.url, timeout=60) as client,
    ):
        yield Served(settings, client, frame.iloc[5000:].reset_index(drop=True), version)
    use_settings(None)


def _infer(served: Served, rows: pd.DataFrame, rid: str, **params: Any) -> httpx.Response:
    body = request_body(rows[MODEL_INPUT_COLUMNS], rid, params or None)
    return served.client.post(
        served.infer, content=orjson.dumps(body), headers={"Content-Type": "application/json"}
    )


def test_explain_returns_one_attribution_per_feature_and_row_summing_to_the_prediction(
    served: Served,
) -> None:
    rows = served.rows.iloc[:40]
    answer = _infer(served, rows, f"explain-{uuid.uuid4().hex[:6]}", explain=True)
    assert answer.status_code == 200, answer.text
    outputs = {o["name"]: o for o in answer.json()["outputs"]}
    attributions = outputs["attributions"]
    features = attributions["parameters"]["features"]
    assert features == MODEL_INPUT_COLUMNS  # the raw inputs the API accepts, not model columns
    assert attributions["shape"] == [40, len(MODEL_INPUT_COLUMNS)]
    values = np.asarray(attributions["data"]).reshape(attributions["shape"])
    probability = np.asarray(outputs["late_probability"]["data"])
    baseline = attributions["parameters"]["baseline_probability"]
    delta = np.asarray(attributions["parameters"]["convergence_delta"])
    assert 0 < baseline < 1
    assert delta.shape == (40,)
    assert np.abs(delta).max() <= TOLERANCE
    # completeness: each row's attributions sum to its served probability minus the baseline's
    np.testing.assert_allclose(values.sum(axis=1), probability - baseline, atol=TOLERANCE)
    # and the reported delta is exactly what is left over (the float32 served net vs float64)
    np.testing.assert_allclose(values.sum(axis=1) - delta, probability - baseline, atol=1e-5)
    assert np.abs(values).sum(axis=1).min() > 0  # no row is explained by nothing


def test_without_explain_the_response_is_unchanged(served: Served) -> None:
    rows = served.rows.iloc[40:45]
    rid = f"plain-{uuid.uuid4().hex[:6]}"
    plain = _infer(served, rows, rid)
    off = _infer(served, rows, rid, explain=False)
    on = _infer(served, rows, rid, explain=True)
    assert plain.status_code == off.status_code == on.status_code == 200
    assert [o["name"] for o in plain.json()["outputs"]] == ["late_probability", "is_late"]
    assert off.json() == plain.json()
    explained = on.json()
    assert explained["outputs"][:2] == plain.json()["outputs"]
    assert explained["parameters"] == plain.json()["parameters"]
    assert [o["name"] for o in explained["outputs"]][2:] == ["attributions"]


@pytest.mark.parametrize("value", ["yes", 1, [True], {"on": True}])
def test_a_bad_explain_value_is_a_400_naming_the_parameter(served: Served, value: Any) -> None:
    answer = _infer(served, served.rows.iloc[:2], "bad-explain", explain=value)
    assert answer.status_code == 400
    assert "parameters.explain must be true or false" in answer.json()["error"]


def test_explain_above_its_row_limit_is_a_413(served: Served) -> None:
    answer = _infer(served, served.rows.iloc[:101], "too-many", explain=True)
    assert answer.status_code == 413
    assert "explain_max_rows" in answer.json()["error"]


def _explained_rows(served: Served, request_ids: set[str]) -> pd.DataFrame:
    frame = read_explanations(served.settings, model_version=served.version)
    return frame[frame["request_id"].isin(request_ids)]


def test_sampled_explanations_are_captured_and_a_planted_shift_moves_its_attribution(
    served: Served,
) -> None:
    name = served.settings.mlflow.registered_model
    reference_ids = set()
    for i in range(8):
        rid = f"ref-{uuid.uuid4().hex[:6]}-{i}"
        assert _infer(served, served.rows.iloc[i * 25 : (i + 1) * 25], rid).status_code == 200
        reference_ids.add(rid)
    wait_for(lambda: len(_explained_rows(served, reference_ids)) == 200, timeout=120)
    stored = _explained_rows(served, reference_ids)
    # one captured row per served row: the served probability, the delta, every input's attribution
    assert {f"{ATTR_PREFIX}{c}" for c in MODEL_INPUT_COLUMNS} <= set(stored.columns)
    assert stored["routed"].all()
    assert (stored["model_name"] == name).all()
    assert stored["convergence_delta"].abs().max() <= TOLERANCE

    start = datetime.now(UTC)
    shifted = served.rows.iloc[200:400].copy()
    shifted[SHIFTED] = SHIFTED_TO
    current_ids = set()
    for i in range(8):
        rid = f"cur-{uuid.uuid4().hex[:6]}-{i}"
        assert _infer(served, shifted.iloc[i * 25 : (i + 1) * 25], rid).status_code == 200
        current_ids.add(rid)
    wait_for(lambda: len(_explained_rows(served, current_ids)) == 200, timeout=120)

    drift = attribution_drift(
        served.settings, name, served.version, start, start + timedelta(hours=1)
    )
    assert drift.reference is not None
    assert drift.reference.rows >= 200
    assert drift.rows == 200
    assert drift.status == "drifted", drift.reason
    top = drift.table[0]
    assert top["feature"] == SHIFTED
    assert top["drifted"]
    assert top["share_change"] > 0
    assert SHIFTED in drift.drifted_features
    # the table goes into the drift report's folder as JSON and a self-contained page
    json_file, page = save_attribution_report(drift, served.settings.state / "report")
    assert orjson.loads(json_file.read_bytes())["drifted_features"] == drift.drifted_features
    assert f"<td>{SHIFTED}</td>" in page.read_text()
