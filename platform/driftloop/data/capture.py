"""The inference log (data capture): layout, schema and reader.

The serving process appends parquet files (written by ``serving.capture.CaptureWriter``)::

    {state}/capture/predictions/date=YYYY-MM-DD/part-*.parquet   one row per predicted row
    {state}/capture/feedback/date=YYYY-MM-DD/part-*.parquet      ground truth posted later

Their columns and types are :data:`PREDICTION_SCHEMA` and :data:`FEEDBACK_SCHEMA` (the writer
takes them from here). Prediction rows: prediction_id (``f"{request_id}:{row}"``), request_id,
row, ts (UTC), routing_key, variant (champion|challenger), served (False for a shadow copy or a
challenger answer that failed and was replaced by the champion's), routed (True when the
weight split chose the variant, False for a request pinned to a version or carrying the caller's
routing key: such rows are served but are no canary evidence; null in files from before the
column), model_name, model_version,
latency_ms (whole request), model_ms (the model call alone; null on error and in files written
before it existed), late_probability (null on error), predicted_label, error (null when fine),
event_timestamp (scheduled departure, UTC, when known) and every column of
:data:`driftloop.schema.MODEL_INPUT_COLUMNS`. Feedback rows: prediction_id, request_id, row,
is_late, ts.

Files are written under a temporary name and renamed, so a reader never sees half a file; many
replicas may write to the same folder (file names carry host, pid and a sequence number).
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa

from driftloop.schema import CATEGORICAL_COLUMNS, EVENT_TIMESTAMP, LABEL, MODEL_INPUT_COLUMNS
from driftloop.settings import Settings, get_settings

logger = logging.getLogger(__name__)

PREDICTIONS = "predictions"
FEEDBACK = "feedback"

_TS = pa.timestamp("us", tz="UTC")
#: Columns of a prediction row before the model inputs, in file order, with their types.
PREDICTION_META_FIELDS: list[tuple[str, pa.DataType]] = [
    ("prediction_id", pa.string()),
    ("request_id", pa.string()),
    ("row", pa.int32()),
    ("ts", _TS),
    ("routing_key", pa.string()),
    ("variant", pa.string()),
    ("served", pa.bool_()),
    ("routed", pa.bool_()),
    ("model_name", pa.string()),
    ("model_version", pa.string()),
    ("latency_ms", pa.float64()),
    ("model_ms", pa.float64()),
    ("late_probability", pa.float64()),
    ("predicted_label", pa.int8()),
    ("error", pa.string()),
    (EVENT_TIMESTAMP, _TS),
]
#: A prediction row: the meta columns, then the model inputs (text categoricals, float64 else).
PREDICTION_SCHEMA = pa.schema(
    [
        *PREDICTION_META_FIELDS,
        *(
            (c, pa.string() if c in CATEGORICAL_COLUMNS else pa.float64())
            for c in MODEL_INPUT_COLUMNS
        ),
    ]
)
#: A feedback row: the label of one earlier prediction.
FEEDBACK_SCHEMA = pa.schema(
    [
        ("prediction_id", pa.string()),
        ("request_id", pa.string()),
        ("row", pa.int32()),
        (LABEL, pa.int8()),
        ("ts", _TS),
    ]
)
PREDICTION_META_COLUMNS = [name for name, _ in PREDICTION_META_FIELDS]
PREDICTION_COLUMNS: list[str] = PREDICTION_SCHEMA.names
FEEDBACK_COLUMNS: list[str] = FEEDBACK_SCHEMA.names


def capture_dir(settings: Settings | None = None) -> Path:
    settings = settings or get_settings()
    return settings.state / "capture"


def kind_dir(kind: str, settings: Settings | None = None) -> Path:
    """Folder of one kind of capture file: ``predictions`` or ``feedback``."""
    return capture_dir(settings) / kind


def partition_dir(kind: str, day: date, settings: Settings | None = None) -> Path:
    return kind_dir(kind, settings) / f"date={day.isoformat()}"


def _utc(value: datetime | str | pd.Timestamp | None) -> pd.Timestamp | None:
    if value is None:
        return None
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _files(
    kind: str, settings: Settings, start: pd.Timestamp | None, end: pd.Timestamp | None
) -> list[Path]:
    root = kind_dir(kind, settings)
    if not root.is_dir():
        return []
    lo = start.date() if start is not None else None
    hi = end.date() if end is not None else None
    files: list[Path] = []
    for part in sorted(root.glob("date=*")):
        try:
            day = date.fromisoformat(part.name.removeprefix("date="))
        except ValueError:
            continue
        if (lo and day < lo) or (hi and day > hi):
            continue
        files.extend(sorted(part.glob("part-*.parquet")))
    return files


def _read(files: list[Path], columns: list[str]) -> pd.DataFrame:
    frames = []
    for path in files:
        try:
            frames.append(pd.read_parquet(path))
        except (OSError, ValueError) as exc:  # a file being removed or not ours: skip, say so
            logger.warning("skipping unreadable capture file %s: %s", path, exc)
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in columns})
    return pd.concat(frames, ignore_index=True)


def read_feedback(
    settings: Settings | None = None,
    start: datetime | str | None = None,
    end: datetime | str | None = None,
) -> pd.DataFrame:
    """Feedback rows (last label per prediction_id wins), optionally within [start, end]."""
    settings = settings or get_settings()
    lo, hi = _utc(start), _utc(end)
    df = _read(_files(FEEDBACK, settings, lo, hi), FEEDBACK_COLUMNS)
    if df.empty:
        return df
    if lo is not None:
        df = df[df["ts"] >= lo]
    if hi is not None:
        df = df[df["ts"] <= hi]
    df = df.sort_values("ts").drop_duplicates("prediction_id", keep="last")
    df[LABEL] = df[LABEL].astype("Int8")
    return df.reset_index(drop=True)


def read_predictions(
    settings: Settings | None = None,
    start: datetime | str | None = None,
    end: datetime | str | None = None,
    model_version: str | int | None = None,
    with_labels: bool = True,
) -> pd.DataFrame:
    """Captured prediction rows with ``start <= ts <= end`` (UTC; naive = UTC), optionally of one
    model version; with ``with_labels`` the column ``is_late`` holds the label posted as feedback
    (null where none arrived). Feedback may arrive up to a week after the prediction."""
    settings = settings or get_settings()
    lo, hi = _utc(start), _utc(end)
    df = _read(_files(PREDICTIONS, settings, lo, hi), PREDICTION_COLUMNS)
    if not df.empty:
        if lo is not None:
            df = df[df["ts"] >= lo]
        if hi is not None:
            df = df[df["ts"] <= hi]
        if model_version is not None:
            df = df[df["model_version"].astype(str) == str(model_version)]
        df = df.sort_values("ts", kind="stable").reset_index(drop=True)
        for col in CATEGORICAL_COLUMNS:
            if col in df.columns:
                df[col] = df[col].astype("object")
    if with_labels:
        fb_start = lo - timedelta(days=1) if lo is not None else None
        fb_end = hi + timedelta(days=7) if hi is not None else None
        fb = read_feedback(settings, fb_start, fb_end)
        labels = (
            fb.set_index("prediction_id")[LABEL]
            if not fb.empty
            else pd.Series(dtype="Int8", name=LABEL)
        )
        df[LABEL] = (
            df["prediction_id"].map(labels).astype("Int8")
            if not df.empty
            else pd.Series(dtype="Int8")
        )
    return df
