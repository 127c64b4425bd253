"""``parameters.explain`` and the explanation sample in the transport-free core, with real
capture and explanation files: the parameter is a JSON boolean (400 otherwise); a version that
cannot explain answers 501 before anything is scored or captured; sampled requests are explained
off the request path and stored in the documented layout, synthetic ones are not; with the rate
at 0 nothing is explained. Models and registry are scripted (unit level, as in
test_dataplane.py); the real model through a real server is tests/integration/serving/
test_explain.py."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest
from serving_doubles import InMemoryFeatures

from driftloop.data.capture import read_predictions
from driftloop.errors import InvalidInputError
from driftloop.monitoring.attribution import read_explanations
from driftloop.registry.client import RegistrySnapshot
from driftloop.schema import MODEL_INPUT_COLUMNS
from driftloop.settings import Settings
from serving import codec
from serving.capture import CaptureWriter
from serving.dataplane import DataPlane
from serving.examples import features_request
from serving.explain import ExplainUnavailableError, parse
from serving.features import FeatureLookup
from serving.handles import ModelHandle, Reconciler
from serving.metrics import ServingMetrics


@dataclass
class Scripted:
    """What a model's ``explain`` returns: attribution j of every row is j / 100."""

    features: list[str]
    values: np.ndarray
    probability: np.ndarray
    baseline_probability: float = 0.2
    delta: np.ndarray = field(default_factory=lambda: np.zeros(0))
    method: str = "scripted"
    n_steps: int = 0
    baseline: str = "scripted"


def _explain(columns: Any, n_steps: int) -> Scripted:
    n = len(columns[MODEL_INPUT_COLUMNS[0]])
    values = np.tile(np.arange(len(MODEL_INPUT_COLUMNS)) / 100, (n, 1))
    return Scripted(list(MODEL_INPUT_COLUMNS), values, np.full(n, 0.3), delta=np.zeros(n))


def _plane(tmp_path: Path, explains: bool, rate: float) -> DataPlane:
    settings = Settings(
        state_dir=tmp_path,
        mlflow={"registered_model": "m"},
        serving={"capture_flush_s": 0.05, "explain_sample_rate": rate},
    )

    def load(name: str, version: str, s: Settings) -> ModelHandle:
        def predict(df: Any) -> np.ndarray:
            return np.full(len(df[MODEL_INPUT_COLUMNS[0]]), 0.3)

        return ModelHandle(
            "m", version, predict, takes_columns=True, explain=_explain if explains else None
        )

    rec = Reconciler(settings, load, lambda s, n: RegistrySnapshot(n, "1", None, 0, None))
    rec.reconcile_once()
    capture, feedback = CaptureWriter(settings), CaptureWriter(settings, "feedback")
    capture.start()
    return DataPlane(
        settings,
        rec,
        FeatureLookup(settings, InMemoryFeatures()),
        capture,
        feedback,
        ServingMetrics(),
    )


def _infer(plane: DataPlane, body: dict[str, Any]) -> dict[str, Any]:
    async def go() -> bytes:
        out = await plane.infer("m", orjson.dumps(body))
        await plane.drain()
        return out

    return orjson.loads(asyncio.run(go()))


def _close(plane: DataPlane) -> None:
    plane.close()
    plane.capture.stop()


@pytest.mark.parametrize("value", [None, False])
def test_explain_absent_or_false_is_off(value: Any) -> None:
    assert parse(value) is False
    assert parse(True) is True


@pytest.mark.parametrize("value", ["true", 1, 0, [True], {}])
def test_explain_must_be_a_json_boolean(value: Any) -> None:
    body = features_request(explain=value)
    with pytest.raises(InvalidInputError, match=r"parameters\.explain must be true or false"):
        codec.decode(orjson.dumps(body), 10)


def test_a_version_that_cannot_explain_answers_501_before_scoring(tmp_path: Path) -> None:
    plane = _plane(tmp_path, explains=False, rate=0.0)
    body = features_request(1, "no-explain", explain=True)
    with pytest.raises(ExplainUnavailableError, match="cannot explain") as err:
        _infer(plane, body)
    assert err.value.status_code == 501
    _close(plane)
    assert read_predictions(plane.settings).empty  # nothing was scored, nothing captured


def test_explain_adds_the_attributions_tensor_row_major(tmp_path: Path) -> None:
    plane = _plane(tmp_path, explains=True, rate=0.0)
    answer = _infer(plane, features_request(2, "explained", explain=True))
    plain = _infer(plane, features_request(2, "explained"))
    _close(plane)
    tensor = answer["outputs"][-1]
    assert tensor["name"] == "attributions"
    assert tensor["shape"] == [2, len(MODEL_INPUT_COLUMNS)]
    assert tensor["data"][: len(MODEL_INPUT_COLUMNS)] == pytest.approx(
        [j / 100 for j in range(len(MODEL_INPUT_COLUMNS))]
    )
    assert tensor["parameters"]["features"] == MODEL_INPUT_COLUMNS
    assert tensor["parameters"]["convergence_delta"] == [0.0, 0.0]
    assert answer["outputs"][:-1] == plain["outputs"]
    assert read_explanations(plane.settings).empty  # rate 0: nothing captured


def test_sampled_requests_are_explained_and_stored_synthetic_ones_are_not(tmp_path: Path) -> None:
    plane = _plane(tmp_path, explains=True, rate=1.0)
    _infer(plane, features_request(1, "live-1"))
    _infer(plane, features_request(1, "probe-1", synthetic="probe"))
    _close(plane)  # finishes queued explanations and writes them
    stored = read_explanations(plane.settings, model_version="1")
    assert stored["request_id"].tolist() == ["live-1"]
    assert stored["prediction_id"].tolist() == ["live-1:0"]
    assert bool(stored["routed"].iloc[0])
    assert stored["late_probability"].iloc[0] == pytest.approx(0.3)
    attrs = [stored[f"attr_{c}"].iloc[0] for c in MODEL_INPUT_COLUMNS]
    assert attrs == pytest.approx([j / 100 for j in range(len(MODEL_INPUT_COLUMNS))])
    files = list((tmp_path / "capture" / "explanations").glob("date=*/part-*.parquet"))
    assert len(files) == 1
    assert isinstance(pd.read_parquet(files[0]), pd.DataFrame)
