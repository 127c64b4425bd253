"""The capture reader on real parquet files laid out as serving writes them: the first label of
a prediction wins, later differing labels are conflicts counted by labeler, files from before the
``labeler`` column still read, and the look-up of served requests in the prediction files."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from driftloop.data.capture import (
    FEEDBACK,
    FEEDBACK_SCHEMA,
    PREDICTION_SCHEMA,
    PREDICTIONS,
    feedback_conflicts,
    partition_dir,
    read_feedback,
    served_row_counts,
)
from driftloop.schema import LABEL
from driftloop.settings import Settings

T0 = datetime(2026, 12, 1, 12, tzinfo=UTC)


def _write(settings: Settings, kind: str, name: str, rows: list[dict[str, Any]], schema: Any):
    folder = partition_dir(kind, rows[0]["ts"].date(), settings)
    folder.mkdir(parents=True, exist_ok=True)
    columns = {f.name: [r.get(f.name) for r in rows] for f in schema}
    pq.write_table(pa.table(columns, schema=schema), folder / f"part-{name}.parquet")


def _label(pid: str, label: int, minutes: int, labeler: str | None) -> dict[str, Any]:
    rid, _, row = pid.rpartition(":")
    return {
        "prediction_id": pid,
        "request_id": rid,
        "row": int(row),
        LABEL: label,
        "ts": T0 + timedelta(minutes=minutes),
        "labeler": labeler,
    }


def test_the_first_label_wins_and_later_differing_labels_are_conflicts(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path)
    old_schema = pa.schema([f for f in FEEDBACK_SCHEMA if f.name != "labeler"])
    # a file from before the labeler column: the honest first labels
    _write(
        settings,
        FEEDBACK,
        "a-old",
        [_label("r1:0", 1, 0, None), _label("r1:1", 0, 0, None)],
        old_schema,
    )
    # later labels; this file sorts BEFORE the old one by name, so ts decides, not file order
    later = [
        _label("r1:0", 0, 5, "token:evil0000"),  # differs: conflict
        _label("r1:1", 0, 5, "token:evil0000"),  # same label: no conflict
        _label("r2:0", 1, 6, "token:good1111"),  # first label of r2:0
        _label("r2:0", 0, 7, "token:evil0000"),
        _label("r2:0", 0, 8, "token:other222"),
    ]
    _write(settings, FEEDBACK, "0-new", later, FEEDBACK_SCHEMA)
    labels = read_feedback(settings).set_index("prediction_id")
    assert labels[LABEL].to_dict() == {"r1:0": 1, "r1:1": 0, "r2:0": 1}
    assert labels["labeler"].to_dict() == {"r1:0": None, "r1:1": None, "r2:0": "token:good1111"}
    found = feedback_conflicts(settings)
    assert found.predictions == 2
    assert found.by_labeler == {"token:evil0000": 2, "token:other222": 1}
    assert found.to_dict()["predictions"] == 2
    # within a window that ends before the conflicts: none
    assert feedback_conflicts(settings, end=T0 + timedelta(minutes=1)).predictions == 0
    assert feedback_conflicts(Settings(state_dir=tmp_path / "empty")).predictions == 0


def _prediction(rid: str, row: int, ts: datetime) -> dict[str, Any]:
    return {"prediction_id": f"{rid}:{row}", "request_id": rid, "row": row, "ts": ts}


def test_served_row_counts_reads_recent_prediction_files_for_the_asked_ids(
    tmp_path: Path,
) -> None:
    settings = Settings(state_dir=tmp_path)
    today = [_prediction("a", r, T0) for r in range(3)] + [_prediction("b", 0, T0)]
    _write(settings, PREDICTIONS, "1", today, PREDICTION_SCHEMA)
    old = T0 - timedelta(days=20)
    _write(settings, PREDICTIONS, "2", [_prediction("ancient", 0, old)], PREDICTION_SCHEMA)
    junk = partition_dir(PREDICTIONS, T0.date(), settings) / "part-junk.parquet"
    junk.write_bytes(b"not parquet")  # skipped with a warning, not fatal
    asked = ["a", "b", "ghost", "ancient"]
    assert served_row_counts(asked, settings, now=T0 + timedelta(hours=1)) == {"a": 3, "b": 1}
    wide = served_row_counts(asked, settings, timedelta(days=30), now=T0)
    assert wide == {"a": 3, "b": 1, "ancient": 1}
    assert served_row_counts([], settings) == {}
