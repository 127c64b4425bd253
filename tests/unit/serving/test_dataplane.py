"""The transport-free core with real capture files: canary fallback, shadow copies, flight mode
with the missing-entity policy, feedback joined to predictions by the capture reader.

Models and registry are scripted here (unit level); the online store is a small in-memory
:class:`serving.features.FeatureSource` (the ``lookup`` that production calls on
driftloop.features.OnlineFeatures; the real store is exercised by the features tests and the
serving integration tests)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest
from serving_doubles import InMemoryFeatures

from driftloop.data.capture import read_predictions
from driftloop.errors import NotFoundError
from driftloop.registry.client import RegistrySnapshot
from driftloop.settings import Settings
from serving.capture import CaptureWriter
from serving.dataplane import DataPlane
from serving.examples import features_request, flight_request
from serving.features import FeatureLookup, FeatureSource
from serving.handles import ModelHandle, Reconciler
from serving.metrics import ServingMetrics


def _model(version: str, kind: str = "ok") -> ModelHandle:
    def predict(df: pd.DataFrame) -> np.ndarray:
        if kind == "raise":
            raise RuntimeError("boom")
        return np.full(len(df), 0.1 * int(version))

    return ModelHandle("m", version, predict)


def _plane(tmp_path: Path, weight: int, mode: str = "canary", kind: str = "ok", **serving: Any):
    settings = Settings(
        state_dir=tmp_path,
        mlflow={"registered_model": "m"},
        serving={"capture_flush_s": 0.05, "mode": mode, **serving},
    )

    def snapshot(s: Settings, name: str) -> RegistrySnapshot:
        return RegistrySnapshot(name, "1", "2", weight, None)

    def load(name: str, version: str, s: Settings) -> ModelHandle:
        return _model(version, kind if version == "2" else "ok")

    rec = Reconciler(settings, load, snapshot)
    rec.reconcile_once()
    capture, feedback = CaptureWriter(settings), CaptureWriter(settings, "feedback")
    capture.start()
    feedback.start()
    source: FeatureSource = InMemoryFeatures()  # checked against the Protocol by mypy
    lookup = FeatureLookup(settings, source)
    plane = DataPlane(settings, rec, lookup, capture, feedback, ServingMetrics())
    return settings, plane


def _finish(plane: DataPlane) -> None:
    asyncio.run(plane.drain())
    plane.close()
    plane.capture.stop()
    plane.feedback_writer.stop()


def _infer(plane: DataPlane, body: dict[str, Any], version: str | None = None) -> dict[str, Any]:
    async def go() -> bytes:
        out = await plane.infer("m", orjson.dumps(body), version)
        await plane.drain()
        return out

    return orjson.loads(asyncio.run(go()))


def test_failing_challenger_is_answered_by_champion_and_both_are_captured(tmp_path: Path) -> None:
    settings, plane = _plane(tmp_path, weight=100, kind="raise")
    out = _infer(plane, features_request(2, request_id="r1"))
    assert out["model_version"] == "1"
    assert out["parameters"] == {"variant": "champion"}
    assert out["outputs"][0]["data"] == pytest.approx([0.1, 0.1])
    _finish(plane)
    log = read_predictions(settings)
    challenger = log[log["variant"] == "challenger"]
    assert len(challenger) == 2
    assert challenger["error"].str.contains("boom").all()
    assert not challenger["served"].any()
    served = log[log["served"]]
    assert served["model_version"].tolist() == ["1", "1"]
    assert served["prediction_id"].tolist() == ["r1:0", "r1:1"]


def test_shadow_mode_answers_with_champion_and_captures_the_copy(tmp_path: Path) -> None:
    settings, plane = _plane(tmp_path, weight=100, mode="shadow")
    out = _infer(plane, features_request(1, request_id="s1"))
    assert out["model_version"] == "1"
    _finish(plane)
    log = read_predictions(settings).set_index("variant")
    assert log.loc["challenger", "late_probability"] == pytest.approx(0.2)
    assert not log.loc["challenger", "served"]
    assert log.loc["champion", "served"]


def test_pinned_version_and_canary_routing(tmp_path: Path) -> None:
    _, plane = _plane(tmp_path, weight=100)
    assert _infer(plane, features_request(1))["model_version"] == "2"
    assert _infer(plane, features_request(1), version="1")["model_version"] == "1"
    with pytest.raises(NotFoundError, match="version 9 is not loaded"):
        _infer(plane, features_request(1), version="9")
    _finish(plane)


def test_flight_mode_derives_features_and_applies_missing_entity_policy(tmp_path: Path) -> None:
    settings, plane = _plane(tmp_path, weight=0)
    body = flight_request(2, routing_key="x")
    body["inputs"][3]["data"] = ["N14228", "N0NE"]  # tailnum column
    out = _infer(plane, body)
    assert out["outputs"][0]["shape"] == [2]
    _finish(plane)
    log = read_predictions(settings)
    assert log["dep_hour"].tolist() == [5.0, 5.0]  # 05:15 New York time
    assert log["day_of_week"].tolist() == [1.0, 1.0]  # Tuesday
    assert log["seats"].isna().tolist() == [False, True]  # imputed (null) for the unknown plane
    assert str(log["event_timestamp"].iloc[0]) == "2013-01-01 10:15:00+00:00"

    _, strict = _plane(tmp_path / "strict", weight=0, missing_entity_policy="reject")
    with pytest.raises(NotFoundError, match="tailnum=N0NE"):
        _infer(strict, body)
    _finish(strict)


def test_feedback_is_joined_to_predictions(tmp_path: Path) -> None:
    settings, plane = _plane(tmp_path, weight=0)
    _infer(plane, features_request(3, request_id="f1"))
    assert plane.feedback("m", orjson.dumps({"request_id": "f1", "labels": [1, 0, 1]})) == {
        "accepted": 3
    }
    plane.feedback("m", orjson.dumps({"prediction_ids": ["f1:1"], "labels": [1]}))
    _finish(plane)
    log = read_predictions(settings)
    assert log["is_late"].tolist() == [1, 1, 1]  # the later label of f1:1 wins
