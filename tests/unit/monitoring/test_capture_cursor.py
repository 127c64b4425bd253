"""The rollout's live analysis reads the inference log incrementally: capture files written by
the real :class:`serving.capture.CaptureWriter` (predictions of a shadow rollout and their
labels), polled twice through a :class:`~driftloop.data.capture.CaptureCursor`; the second poll
reads only the files written since the first, and its frame and canary decision are those of a
full read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from driftloop.data.capture import FEEDBACK, PREDICTIONS, CaptureCursor, kind_dir
from driftloop.monitoring.canary import read_rollout_frame
from driftloop.monitoring.noninferiority import look
from driftloop.registry.client import RegistrySnapshot
from driftloop.schema import CATEGORICAL_COLUMNS, LABEL, MODEL_INPUT_COLUMNS
from driftloop.settings import Settings
from serving.capture import CaptureWriter

ROWS = 5


def _settings(state: Path) -> Settings:
    return Settings(
        state_dir=state,
        serving={"capture_flush_s": 0.05, "capture_flush_rows": 100_000},
        rollout={"look_every": 20, "max_requests": 1000},
    )


def _request(
    predictions: CaptureWriter, feedback: CaptureWriter, rid: str, rng: np.random.Generator
) -> None:
    """One routed shadow request: the champion answers, the challenger scores a copy; then the
    labels of its rows."""
    inputs: dict[str, Any] = {c: rng.random(ROWS) for c in MODEL_INPUT_COLUMNS}
    for col in CATEGORICAL_COLUMNS:
        inputs[col] = ["UA"] * ROWS
    now = datetime.now(UTC)
    for variant, version, served in (("champion", "1", True), ("challenger", "2", False)):
        meta = {
            "request_id": rid,
            "ts": now,
            "routing_key": rid,
            "variant": variant,
            "served": served,
            "routed": True,
            "model_name": "flight-delay",
            "model_version": version,
            "latency_ms": 2.0,
            "model_ms": 1.0,
            "error": None,
        }
        predictions.put_predictions(meta, ROWS, rng.random(ROWS), inputs, None)
    feedback.put_feedback(
        {
            "prediction_id": [f"{rid}:{i}" for i in range(ROWS)],
            "request_id": [rid] * ROWS,
            "row": list(range(ROWS)),
            LABEL: [int(v) for v in rng.integers(0, 2, ROWS)],
            "ts": [now + timedelta(milliseconds=1)] * ROWS,
            "labeler": ["token:test"] * ROWS,
        }
    )


class Traffic:
    """One serving process's two capture writers (file names carry the process and a sequence
    number, so they live as long as the process)."""

    def __init__(self, settings: Settings) -> None:
        self.predictions = CaptureWriter(settings)
        self.feedback = CaptureWriter(settings, FEEDBACK)
        self.predictions.start()
        self.feedback.start()

    def send(self, tag: str, n: int, seed: int) -> None:
        """``n`` requests and their labels, on disk when this returns."""
        rng = np.random.default_rng(seed)
        for i in range(n):
            _request(self.predictions, self.feedback, f"{tag}-{i:03d}", rng)
        assert self.predictions.wait_idle(10)
        assert self.feedback.wait_idle(10)

    def stop(self) -> None:
        assert self.predictions.stop(10)
        assert self.feedback.stop(10)


def _on_disk(settings: Settings) -> set[Path]:
    return {
        *kind_dir(PREDICTIONS, settings).rglob("part-*.parquet"),
        *kind_dir(FEEDBACK, settings).rglob("part-*.parquet"),
    }


def test_a_second_poll_reads_only_new_files_and_decides_as_a_full_read(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    since = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    cursor = CaptureCursor()
    traffic = Traffic(settings)

    traffic.send("a", 40, seed=1)
    first_files = _on_disk(settings)
    first = read_rollout_frame(settings, since, cursor)
    assert set(cursor.read_last) == first_files
    assert len(first) == 40 * ROWS * 2

    traffic.send("b", 40, seed=2)
    traffic.stop()
    new_files = _on_disk(settings) - first_files
    assert new_files
    polled = read_rollout_frame(settings, since, cursor)
    assert set(cursor.read_last) == new_files  # nothing of the first poll is read again
    full = read_rollout_frame(settings, since)
    pd.testing.assert_frame_equal(polled, full)
    assert polled[LABEL].notna().all()

    snap = RegistrySnapshot(
        name="flight-delay",
        champion="1",
        challenger="2",
        weight=100,
        mode="shadow",
        rollout_started=since,
    )
    until = datetime.now(UTC)
    from_cursor = look(settings, snap, polled, 80, until, True)
    from_full = look(settings, snap, full, 80, until, True)
    assert from_cursor.evidence.routed == 80
    assert from_cursor.to_dict() == from_full.to_dict()

    read_rollout_frame(settings, since, cursor)
    assert cursor.read_last == []  # nothing new: nothing read
