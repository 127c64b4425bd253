"""The transport-free core with real capture files: canary fallback, shadow copies, flight mode
with the missing-entity policy, feedback joined to predictions by the capture reader; labels
accepted only for served predictions (index of served requests, then the capture files), first
label wins, the labeler stored.

Models and registry are scripted here (unit level); the online store is a small in-memory
:class:`serving.features.FeatureSource` (the ``lookup`` that production calls on
driftloop.features.OnlineFeatures; the real store is exercised by the features tests and the
serving integration tests)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest
from serving_doubles import InMemoryFeatures

from driftloop.data.capture import (
    AMBIGUOUS,
    feedback_conflicts,
    read_feedback,
    read_predictions,
    served_row_counts,
)
from driftloop.errors import ConflictError, InvalidInputError, NotFoundError, PayloadTooLargeError
from driftloop.registry.client import RegistrySnapshot
from driftloop.settings import Settings
from serving.capture import CaptureWriter
from serving.dataplane import DataPlane
from serving.examples import features_request, flight_request
from serving.features import FeatureLookup, FeatureSource
from serving.handles import ModelHandle, Reconciler
from serving.labels import LabelMemory, ServedIndex
from serving.metrics import ServingMetrics


def _model(version: str, kind: str = "ok", gate: threading.Event | None = None) -> ModelHandle:
    def predict(df: pd.DataFrame) -> np.ndarray:
        if kind == "raise":
            raise RuntimeError("boom")
        if gate is not None:  # a challenger slower than the traffic: scores once released
            gate.wait(10)
        return np.full(len(df), 0.1 * int(version))

    return ModelHandle("m", version, predict)


def _plane(
    tmp_path: Path,
    weight: int,
    mode: str = "canary",
    kind: str = "ok",
    index_size: int = 1000,
    gate: threading.Event | None = None,
    **serving: Any,
) -> tuple[Settings, DataPlane]:
    settings = Settings(
        state_dir=tmp_path,
        mlflow={"registered_model": "m"},
        serving={"capture_flush_s": 0.05, "mode": mode, **serving},
    )

    def snapshot(s: Settings, name: str) -> RegistrySnapshot:
        return RegistrySnapshot(name, "1", "2", weight, None)

    def load(name: str, version: str, s: Settings) -> ModelHandle:
        if version != "2":
            return _model(version)
        return _model(version, kind, gate)

    rec = Reconciler(settings, load, snapshot)
    rec.reconcile_once()
    capture, feedback = CaptureWriter(settings), CaptureWriter(settings, "feedback")
    capture.start()
    feedback.start()
    source: FeatureSource = InMemoryFeatures()  # checked against the Protocol by mypy
    lookup = FeatureLookup(settings, source)
    plane = DataPlane(
        settings, rec, lookup, capture, feedback, ServingMetrics(), served_index_size=index_size
    )
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
    assert out["parameters"] == {
        "variant": "champion",
        "threshold": 0.5,
        "threshold_source": "default",
        "lineage_id": "",  # a handle built without the registry has no lineage
    }
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
    # /metrics counts the copy apart: requests summed over variants are the requests served
    requests = {
        s.labels["variant"]: s.value
        for m in plane.metrics.registry.collect()
        if m.name == "driftloop_inference_requests"
        for s in m.samples
        if s.name.endswith("_total")
    }
    assert requests == {"champion": 1.0, "shadow": 1.0}


def test_shadow_copies_beyond_the_pending_bound_are_dropped_and_counted(tmp_path: Path) -> None:
    """A challenger slower than the traffic gets at most serving.shadow_max_pending copies in
    flight; the rest are skipped (counted), and every request is answered by the champion."""
    release = threading.Event()
    settings, plane = _plane(
        tmp_path, weight=100, mode="shadow", gate=release, shadow_max_pending=2
    )

    async def go() -> list[bytes]:
        answers = [
            await plane.infer("m", orjson.dumps(features_request(1, request_id=f"q{i}")))
            for i in range(6)
        ]
        release.set()
        await plane.drain()
        return answers

    answers = [orjson.loads(a) for a in asyncio.run(go())]
    assert [a["model_version"] for a in answers] == ["1"] * 6
    assert plane.metrics.shadow_dropped._value.get() == 4
    _finish(plane)
    log = read_predictions(settings)
    assert sorted(log[log["variant"] == "challenger"]["request_id"]) == ["q0", "q1"]
    assert (log["variant"] == "champion").sum() == 6


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


def _label(plane: DataPlane, body: dict[str, Any], labeler: str = "token:aaaa0000") -> Any:
    return asyncio.run(plane.feedback("m", orjson.dumps(body), labeler))


def _rejected(plane: DataPlane, reason: str) -> float:
    value = plane.metrics.registry.get_sample_value(
        "driftloop_feedback_rejected_total", {"reason": reason}
    )
    return value or 0.0


def test_feedback_is_joined_to_predictions_first_label_wins(tmp_path: Path) -> None:
    settings, plane = _plane(tmp_path, weight=0)
    _infer(plane, features_request(3, request_id="f1"))
    assert _label(plane, {"request_id": "f1", "labels": [1, 0, 1]}) == {
        "accepted": 3,
        "conflicts": 0,
    }
    # a later, differing label is stored as a conflict; a repeat of the same label is none
    again = {"prediction_ids": ["f1:1", "f1:2"], "labels": [1, 1]}
    assert _label(plane, again, "token:bbbb1111") == {"accepted": 2, "conflicts": 1}
    conflicts = plane.metrics.registry.get_sample_value("driftloop_feedback_conflicts_total")
    assert conflicts == 1.0
    _finish(plane)
    log = read_predictions(settings)
    assert log["is_late"].tolist() == [1, 0, 1]  # the first label of f1:1 wins
    stored = read_feedback(settings)
    assert stored["labeler"].tolist() == ["token:aaaa0000"] * 3
    found = feedback_conflicts(settings)
    assert (found.predictions, found.by_labeler) == (1, {"token:bbbb1111": 1})


def test_labels_for_predictions_never_served_are_404_and_nothing_is_stored(
    tmp_path: Path,
) -> None:
    settings, plane = _plane(tmp_path, weight=0)
    _infer(plane, features_request(2, request_id="s1"))
    with pytest.raises(NotFoundError, match="unknown request_id 'ghost'"):
        _label(plane, {"request_id": "ghost", "labels": [1]})
    # one good id does not carry a bad one: the whole call is refused, the first unknown named
    mixed = {"prediction_ids": ["s1:0", "s1:2", "ghost:0"], "labels": [1, 1, 1]}
    with pytest.raises(NotFoundError, match=r"'s1:2': request 's1' has 2 rows"):
        _label(plane, mixed)
    with pytest.raises(NotFoundError, match="'ghost:0': it was never served"):
        _label(plane, {"prediction_ids": ["s1:1", "ghost:0"], "labels": [0, 1]})
    assert _rejected(plane, "unknown_prediction") == 3
    _finish(plane)
    assert read_feedback(settings).empty


def test_label_calls_are_capped_by_rows_and_id_length(tmp_path: Path) -> None:
    settings, plane = _plane(tmp_path, weight=0, max_rows_per_request=20, max_id_length=16)
    _infer(plane, features_request(2, request_id="c1"))
    with pytest.raises(InvalidInputError, match="3 labels but request 'c1' has 2 rows"):
        _label(plane, {"request_id": "c1", "labels": [1, 0, 1]})
    with pytest.raises(PayloadTooLargeError, match="21 labels exceed the limit of 20"):
        _label(plane, {"prediction_ids": ["c1:0"] * 21, "labels": [1] * 21})
    with pytest.raises(InvalidInputError, match="request_id of 17 characters exceeds 16"):
        _label(plane, {"request_id": "x" * 17, "labels": [1]})
    with pytest.raises(InvalidInputError, match="too long"):
        _label(plane, {"prediction_ids": ["x" * 17 + ":0"], "labels": [1]})
    with pytest.raises(InvalidInputError, match="too long"):
        _label(plane, {"prediction_ids": ["c1:" + "0" * 100], "labels": [1]})
    assert _rejected(plane, "invalid") == 4
    assert _rejected(plane, "too_large") == 1
    _finish(plane)
    assert read_feedback(settings).empty


def test_a_request_not_in_the_index_is_found_in_the_capture_files(tmp_path: Path) -> None:
    """Another replica (or this one before a restart, or an evicted entry): the prediction
    files decide. The index is bounded: a flood of requests evicts the oldest first."""
    _, served = _plane(tmp_path, weight=0, index_size=2)
    for rid in ("old", "mid", "new"):
        _infer(served, features_request(3, request_id=rid))
    assert served.served.rows("old") is None  # evicted (FIFO)
    assert served.served.rows("new") == 3
    _finish(served)  # its capture is on disk

    _, other = _plane(tmp_path, weight=0)  # a fresh replica on the same capture folder
    assert len(other.served) == 0
    assert _label(other, {"prediction_ids": ["old:2", "mid:0"], "labels": [1, 0]})["accepted"] == 2
    assert other.served.rows("old") == 3  # remembered after the look-up
    with pytest.raises(NotFoundError, match="'old:3': request 'old' has 3 rows"):
        _label(other, {"prediction_ids": ["old:3"], "labels": [1]})
    _finish(other)


def test_served_index_and_label_memory_are_bounded_fifo() -> None:
    index = ServedIndex(capacity=3)
    for i in range(10):
        index.add(f"r{i}", i + 1)
    assert len(index) == 3
    assert [index.rows(f"r{i}") for i in range(6, 10)] == [None, 8, 9, 10]
    index.add("r8", 2)  # a reused id is ambiguous, whatever the row counts
    assert index.rows("r8") == AMBIGUOUS
    assert index.is_ambiguous("r8")
    index.add("r8", 9)  # and stays so
    assert index.is_ambiguous("r8")
    index.update({"r9": 10, "r7": 4})  # the files agree on r9, not on r7
    assert (index.rows("r9"), index.rows("r7"), index.rows("r8")) == (10, AMBIGUOUS, AMBIGUOUS)
    index.update({"r10": 4})  # new: remembered, the oldest (r7) evicted
    assert (index.rows("r10"), index.rows("r7"), len(index)) == (4, None, 3)
    index.update({"r10": AMBIGUOUS})  # the files saw r10 used twice
    assert index.is_ambiguous("r10")
    memory = LabelMemory(capacity=2)
    assert memory.record([("a:0", 1), ("a:0", 1), ("a:0", 0), ("b:0", 0)]) == 1
    assert memory.record([("c:0", 1), ("a:0", 0)]) == 0  # a:0 was evicted: no longer known
    assert len(memory) == 2
    with pytest.raises(ValueError, match="capacity"):
        ServedIndex(0)


def test_a_reused_request_id_is_ambiguous_and_its_labels_are_409_storing_nothing(
    tmp_path: Path,
) -> None:
    """A caller reusing a victim's request id with more rows must not lift the label cap of
    that id: any second request under an id makes it ambiguous (whatever the row counts)."""
    settings, plane = _plane(tmp_path, weight=0)
    _infer(plane, features_request(1, request_id="victim"))
    assert _label(plane, {"request_id": "victim", "labels": [1]})["accepted"] == 1
    _infer(plane, features_request(5, request_id="victim"))  # the attacker, 5 rows
    _infer(plane, features_request(1, request_id="twice"))
    _infer(plane, features_request(1, request_id="twice"))  # same row count: ambiguous too
    for body in (
        {"request_id": "victim", "labels": [0]},
        {"prediction_ids": ["victim:3"], "labels": [1]},
        {"prediction_ids": ["twice:0"], "labels": [1]},
    ):
        with pytest.raises(ConflictError, match="was used by more than one request") as err:
            _label(plane, body)
        assert err.value.status_code == 409
    assert _rejected(plane, "ambiguous_request_id") == 3
    _finish(plane)
    stored = read_feedback(settings)
    assert stored["prediction_id"].tolist() == ["victim:0"]  # only the label before the reuse

    # a fresh replica on the same files: the capture look-up finds the reuse too
    assert served_row_counts(["victim", "twice"], settings) == {
        "victim": AMBIGUOUS,
        "twice": AMBIGUOUS,
    }
    _, other = _plane(tmp_path, weight=0)
    with pytest.raises(ConflictError, match="'victim' was used by more than one request"):
        _label(other, {"prediction_ids": ["victim:0"], "labels": [1]})
    assert other.served.is_ambiguous("victim")
    _finish(other)


@pytest.mark.parametrize(
    ("weight", "mode", "kind"),
    [(100, "canary", "raise"), (100, "shadow", "ok")],
    ids=["failed-challenger-answered-by-champion", "shadow-copy"],
)
def test_one_request_captured_twice_is_not_a_reuse(
    tmp_path: Path, weight: int, mode: str, kind: str
) -> None:
    """A challenger failure (its rows and the champion's) and a shadow copy write two rows per
    row of ONE request: its labels are accepted, on this replica and on a fresh one."""
    settings, plane = _plane(tmp_path, weight=weight, mode=mode, kind=kind)
    _infer(plane, features_request(2, request_id="one"))
    assert not plane.served.is_ambiguous("one")
    assert _label(plane, {"request_id": "one", "labels": [1, 0]})["accepted"] == 2
    _finish(plane)
    assert len(read_predictions(settings)) == 4  # two rows per row
    assert served_row_counts(["one"], settings) == {"one": 2}
    _, other = _plane(tmp_path, weight=0)  # a fresh replica on the same capture folder
    assert _label(other, {"prediction_ids": ["one:1"], "labels": [0]})["accepted"] == 1
    _finish(other)


def test_feedback_lists_are_counted_before_their_items_are_validated(tmp_path: Path) -> None:
    """A long list of wrong types would cost pydantic one error object per item: the length
    is checked first (413), and nested lists never reach the parser."""
    _, plane = _plane(tmp_path, weight=0, max_rows_per_request=20)
    _infer(plane, features_request(2, request_id="c1"))
    with pytest.raises(PayloadTooLargeError, match="50000 prediction_ids exceed the limit of 20"):
        _label(plane, {"prediction_ids": [0] * 50_000, "labels": [1]})
    with pytest.raises(PayloadTooLargeError, match="50000 labels exceed the limit of 20"):
        _label(plane, {"request_id": "c1", "labels": ["a"] * 50_000})
    nested = b'{"request_id": "c1", "labels": [' + b",".join([b"[]"] * 1000) + b"]}"
    with pytest.raises(PayloadTooLargeError, match="more than 16 JSON arrays"):
        asyncio.run(plane.feedback("m", nested, "token:aaaa0000"))
    with pytest.raises(InvalidInputError, match="malformed JSON"):
        asyncio.run(plane.feedback("m", b'{"request_id": "c1", "labels": [1', "token:aaaa0000"))
    with pytest.raises(InvalidInputError, match=r"labels\.0"):
        _label(plane, {"request_id": "c1", "labels": ["a"]})
    assert _label(plane, {"request_id": "c1", "labels": [1, 0]})["accepted"] == 2
    _finish(plane)
