"""Inputs no model can score are the caller's fault, not the challenger's: rows that fail the
challenger AND the champion are captured but are no canary evidence, and numbers beyond the
models' float32 range are refused before any model sees them (a review found that a caller with a
predict token could otherwise roll back any challenger with +-1e300 features). Models and registry
are scripted (unit level); the capture files are real."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pytest
from serving_doubles import InMemoryFeatures

from driftloop.data.capture import read_predictions
from driftloop.errors import InvalidInputError
from driftloop.registry.client import RegistrySnapshot
from driftloop.settings import Settings
from serving import codec
from serving.capture import CaptureWriter
from serving.dataplane import DataPlane, ModelFailedError
from serving.examples import features_request
from serving.features import FeatureLookup
from serving.handles import ModelHandle, Reconciler
from serving.metrics import ServingMetrics


def _plane(tmp_path: Path, champion_fails: bool) -> tuple[Settings, DataPlane]:
    """Champion v1, challenger v2 at weight 100; v2 always fails, v1 fails on request when
    ``champion_fails``."""
    settings = Settings(
        state_dir=tmp_path, mlflow={"registered_model": "m"}, serving={"capture_flush_s": 0.05}
    )

    def model(version: str) -> ModelHandle:
        def predict(df: pd.DataFrame) -> np.ndarray:
            if version == "2" or champion_fails:
                raise RuntimeError(f"v{version} cannot score this")
            return np.full(len(df), 0.2)

        return ModelHandle("m", version, predict)

    rec = Reconciler(
        settings,
        lambda name, version, s: model(version),
        lambda s, name: RegistrySnapshot(name, "1", "2", 100, None),
    )
    rec.reconcile_once()
    capture, feedback = CaptureWriter(settings), CaptureWriter(settings, "feedback")
    capture.start()
    feedback.start()
    plane = DataPlane(
        settings,
        rec,
        FeatureLookup(settings, InMemoryFeatures()),
        capture,
        feedback,
        ServingMetrics(),
    )
    return settings, plane


def _run(plane: DataPlane, request_id: str) -> None:
    async def go() -> None:
        try:
            await plane.infer("m", orjson.dumps(features_request(3, request_id=request_id)))
        finally:
            await plane.drain()

    asyncio.run(go())


def _close(plane: DataPlane) -> None:
    plane.close()
    plane.capture.stop()
    plane.feedback_writer.stop()


def test_a_challenger_failure_the_champion_survives_is_evidence(tmp_path: Path) -> None:
    settings, plane = _plane(tmp_path, champion_fails=False)
    _run(plane, "r-ok")
    _close(plane)
    log = read_predictions(settings)
    challenger = log[log["variant"] == "challenger"]
    assert len(challenger) == 3
    assert challenger["error"].notna().all()
    assert challenger["routed"].all()  # a genuine challenger defect counts against it


def test_rows_that_fail_both_models_are_captured_but_no_evidence(tmp_path: Path) -> None:
    settings, plane = _plane(tmp_path, champion_fails=True)
    with pytest.raises(ModelFailedError, match="v1 cannot score"):
        _run(plane, "r-bad")
    _close(plane)
    log = read_predictions(settings)
    assert sorted(log["variant"].unique()) == ["challenger", "champion"]
    assert log["error"].notna().all()
    # the input's fault: evidence for neither arm (nor a sample-ratio mismatch)
    assert not log["routed"].any()


@pytest.mark.parametrize("value", [1e300, -1e300, 3.5e38])
def test_numbers_beyond_float32_are_refused_before_any_model(value: float) -> None:
    body = features_request(2)
    distance = next(t for t in body["inputs"] if t["name"] == "distance")
    distance["data"][1] = value
    with pytest.raises(InvalidInputError, match=r"'distance'.*row 1.*float32"):
        codec.decode(orjson.dumps(body), 10)


def test_the_largest_float32_is_still_accepted() -> None:
    body = features_request(1)
    distance = next(t for t in body["inputs"] if t["name"] == "distance")
    distance["data"][0] = float(np.finfo(np.float32).max)
    assert codec.decode(orjson.dumps(body), 10).n == 1
