"""The monitor judges routed traffic only, as the canary does: requests pinned to a version or
carrying the caller's routing key (``routed`` false) are served but cannot start a retrain; rows
from capture files written before the ``routed`` column (null) are still judged. Real capture
files, written by the serving capture writer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from driftloop.monitoring.monitor import current_frame
from driftloop.schema import CATEGORICAL_COLUMNS, MODEL_INPUT_COLUMNS
from driftloop.settings import Settings
from serving.capture import CaptureWriter


def test_pinned_and_keyed_requests_are_served_but_not_judged(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path, serving={"capture_flush_s": 0.05})
    writer = CaptureWriter(settings)
    writer.start()
    now = datetime.now(UTC)
    for request_id, routed in [("routed", True), ("pinned", False), ("legacy", None)]:
        meta = {
            "request_id": request_id,
            "ts": now,
            "routing_key": request_id,
            "variant": "champion",
            "served": True,
            "routed": routed,
            "model_name": "flight-delay",
            "model_version": "3",
            "latency_ms": 1.0,
            "model_ms": 0.5,
            "error": None,
        }
        inputs = {
            c: ["x", "y"] if c in CATEGORICAL_COLUMNS else [1.0, 2.0] for c in MODEL_INPUT_COLUMNS
        }
        writer.put_predictions(meta, 2, np.array([0.2, 0.7]), inputs, None)
    writer.stop()
    frame = current_frame(settings, now - timedelta(minutes=1), now + timedelta(minutes=1), "3")
    assert sorted(set(frame["request_id"])) == ["legacy", "routed"]
    assert len(frame) == 4
