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
before it existed), late_probability (null on error), predicted_label, decision_threshold (the
version's threshold that made predicted_label; null in files from before the column), error (null
when fine), lineage_id (:func:`lineage_id` of the answering version: version plus digests of its
training run, data revision and feature service; null in files from before the column), synthetic
(null for real traffic; the caller's mark, e.g. ``load-test``, for load-test and probe traffic,
which the readers leave out unless asked: see :func:`read_predictions`),
event_timestamp (scheduled departure, UTC, when known) and every column of
:data:`driftloop.schema.MODEL_INPUT_COLUMNS`. Feedback rows: prediction_id, request_id, row,
is_late, ts, labeler (the fingerprint of the token that posted the label, ``token:ab12cd34``, or
``anonymous`` with auth off; null in files from before the column).

Labels: the FIRST label of a prediction (by ``ts``) is its label; a later one stays in the files
as a *conflict* (:func:`feedback_conflicts` counts them by labeler), so whoever may post labels
cannot overwrite the ground truth that the monitor and the canary judge on. Serving accepts a
label only for a prediction it can find: :func:`served_row_counts` is its look-up in the files;
a request id that more than one request used is :data:`AMBIGUOUS` there (labels refused).

Files are written under a temporary name and renamed, so a reader never sees half a file; many
replicas may write to the same folder (file names carry host, pid and a sequence number).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from driftloop.errors import InvalidInputError, NotFoundError
from driftloop.schema import CATEGORICAL_COLUMNS, EVENT_TIMESTAMP, LABEL, MODEL_INPUT_COLUMNS
from driftloop.settings import Settings, get_settings

if TYPE_CHECKING:
    from driftloop.registry.client import VersionInfo

logger = logging.getLogger(__name__)

PREDICTIONS = "predictions"
FEEDBACK = "feedback"
#: Row count reported for a request id that more than one request used (its prediction ids
#: name rows of several requests, so no label can be attached to one of them).
AMBIGUOUS = -1

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
    ("decision_threshold", pa.float64()),
    ("error", pa.string()),
    ("lineage_id", pa.string()),
    ("synthetic", pa.string()),
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
        ("labeler", pa.string()),
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


@dataclass
class CaptureCursor:
    """What a reader that polls has read already: capture files are immutable once renamed
    into place, so a file read once is kept (its frame) and the next poll reads only the files
    that appeared since. Pass one to :func:`read_predictions` (or :func:`read_feedback`) on
    every poll of the same window (the rollout's live analysis): the result is the same as a
    full read, at the cost of the new files. ``read_last`` names the files the last
    :func:`read_predictions` call read from disk (its feedback files included)."""

    frames: dict[Path, pd.DataFrame] = field(default_factory=dict)
    read_last: list[Path] = field(default_factory=list)


def _read(
    files: list[Path], columns: list[str], cursor: CaptureCursor | None = None
) -> pd.DataFrame:
    frames = []
    for path in files:
        if cursor is not None and path in cursor.frames:
            frames.append(cursor.frames[path])
            continue
        try:
            frame = pd.read_parquet(path)
        except (OSError, ValueError) as exc:  # a file being removed or not ours: skip, say so
            logger.warning("skipping unreadable capture file %s: %s", path, exc)
            continue
        frames.append(frame)
        if cursor is not None:
            cursor.frames[path] = frame
            cursor.read_last.append(path)
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in columns})
    return pd.concat(frames, ignore_index=True)


def _all_feedback(
    settings: Settings,
    lo: pd.Timestamp | None,
    hi: pd.Timestamp | None,
    cursor: CaptureCursor | None = None,
) -> pd.DataFrame:
    """Every feedback row with ``lo <= ts <= hi``, in posting order (ts, then file order)."""
    df = _read(_files(FEEDBACK, settings, lo, hi), FEEDBACK_COLUMNS, cursor)
    if "labeler" not in df.columns:  # only files from before the column
        df["labeler"] = None
    if df.empty:
        return df
    if lo is not None:
        df = df[df["ts"] >= lo]
    if hi is not None:
        df = df[df["ts"] <= hi]
    df = df.astype({"labeler": "object"})
    df["labeler"] = df["labeler"].where(df["labeler"].notna(), None)
    return df.sort_values("ts", kind="stable")


def read_feedback(
    settings: Settings | None = None,
    start: datetime | str | None = None,
    end: datetime | str | None = None,
    cursor: CaptureCursor | None = None,
) -> pd.DataFrame:
    """Feedback rows, the FIRST label per prediction_id (by ts), optionally within [start, end].
    Later labels of the same prediction are conflicts (:func:`feedback_conflicts`), never an
    overwrite. ``cursor``: files it has read already are not read again."""
    settings = settings or get_settings()
    df = _all_feedback(settings, _utc(start), _utc(end), cursor)
    if df.empty:
        return df
    df = df.drop_duplicates("prediction_id", keep="first")
    df[LABEL] = df[LABEL].astype("Int8")
    return df.reset_index(drop=True)


@dataclass(frozen=True)
class FeedbackConflicts:
    """Predictions that got a later label differing from their first one. ``by_labeler``: the
    number of such predictions per labeler of a differing later label (``unknown`` for files
    from before the column)."""

    predictions: int = 0
    by_labeler: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return {"predictions": self.predictions, "by_labeler": dict(self.by_labeler)}


def feedback_conflicts(
    settings: Settings | None = None,
    start: datetime | str | None = None,
    end: datetime | str | None = None,
) -> FeedbackConflicts:
    """Count the predictions whose labels within [start, end] disagree: a later label that
    differs from the first (the one :func:`read_feedback` keeps). A repeat of the same label is
    no conflict."""
    settings = settings or get_settings()
    df = _all_feedback(settings, _utc(start), _utc(end))
    if df.empty:
        return FeedbackConflicts()
    first = df.drop_duplicates("prediction_id", keep="first").set_index("prediction_id")[LABEL]
    later = df[df.duplicated("prediction_id", keep="first")]
    differing = later[later[LABEL].to_numpy() != later["prediction_id"].map(first).to_numpy()]
    if differing.empty:
        return FeedbackConflicts()
    who = differing.assign(labeler=differing["labeler"].fillna("unknown"))
    counts = who.drop_duplicates(["prediction_id", "labeler"]).groupby("labeler").size()
    return FeedbackConflicts(
        predictions=int(differing["prediction_id"].nunique()),
        by_labeler={str(k): int(v) for k, v in counts.items()},
    )


def served_row_counts(
    request_ids: Iterable[str],
    settings: Settings | None = None,
    horizon: timedelta = timedelta(days=8),
    now: datetime | None = None,
) -> dict[str, int]:
    """Rows served per request id, for the ids among ``request_ids`` that the prediction files
    of the last ``horizon`` hold (ids not found are absent); :data:`AMBIGUOUS` for an id that
    more than one request used: its row 0 was served (``served`` not false: a shadow copy or a
    challenger answer replaced by the champion's is the same request) at more than one ``ts``.
    Reads only the request_id, row, ts and served columns, filtered to the ids, through every
    file of the horizon (a reuse may be in any of them; an id found ambiguous is no longer
    read): serving calls it for a label whose prediction this replica did not serve itself."""
    settings = settings or get_settings()
    wanted = set(request_ids)
    found: dict[str, int] = {}
    if not wanted:
        return found
    first_served: dict[str, object] = {}  # request id -> ts of a served row 0
    lo = pd.Timestamp(now or datetime.now(UTC)) - horizon
    for path in reversed(_files(PREDICTIONS, settings, _utc(lo), None)):
        open_ids = sorted(rid for rid in wanted if found.get(rid) != AMBIGUOUS)
        if not open_ids:
            break
        try:
            names = set(pq.read_schema(path).names)
            columns = [c for c in ("request_id", "row", "ts", "served") if c in names]
            table = pq.read_table(
                path,
                columns=columns,
                filters=pc.field("request_id").isin(pa.array(open_ids, type=pa.string())),
            )
        except (OSError, ValueError, pa.ArrowException) as exc:  # removed, or not ours
            logger.warning("skipping unreadable capture file %s: %s", path, exc)
            continue
        if table.num_rows:
            _count_rows(table, found, first_served)
    return found


def _count_rows(table: pa.Table, found: dict[str, int], first_served: dict[str, object]) -> None:
    """Fold one file's (request_id, row, ts, served) rows into ``found`` (see
    :func:`served_row_counts`)."""
    n = table.num_rows
    ids = table.column("request_id").to_pylist()
    rows = table.column("row").to_pylist()
    stamps = table.column("ts").to_pylist() if "ts" in table.column_names else [None] * n
    served = table.column("served").to_pylist() if "served" in table.column_names else [None] * n
    for rid, row, ts, was_served in zip(ids, rows, stamps, served, strict=True):
        if row is None or found.get(rid) == AMBIGUOUS:
            continue
        if row == 0 and was_served is not False:
            seen = first_served.setdefault(rid, ts)
            if seen != ts:
                found[rid] = AMBIGUOUS
                continue
        if row + 1 > found.get(rid, 0):
            found[rid] = row + 1


def read_predictions(
    settings: Settings | None = None,
    start: datetime | str | None = None,
    end: datetime | str | None = None,
    model_version: str | int | None = None,
    with_labels: bool = True,
    include_synthetic: bool = False,
    cursor: CaptureCursor | None = None,
) -> pd.DataFrame:
    """Captured prediction rows with ``start <= ts <= end`` (UTC; naive = UTC), optionally of one
    model version; with ``with_labels`` the column ``is_late`` holds the label posted as feedback
    (null where none arrived). Feedback may arrive up to a week after the prediction.
    Synthetic rows (load tests, probes: ``synthetic`` not null) are left out unless
    ``include_synthetic``: whatever judges traffic (monitor, canary) never sees them by default.
    ``cursor`` (a poller's): only files it has not read yet are read from disk; the result is
    the same as without it."""
    settings = settings or get_settings()
    lo, hi = _utc(start), _utc(end)
    if cursor is not None:
        cursor.read_last = []
    df = _read(_files(PREDICTIONS, settings, lo, hi), PREDICTION_COLUMNS, cursor)
    if "synthetic" not in df.columns:  # only files from before the column: real traffic
        df["synthetic"] = pd.Series(None, index=df.index, dtype="object")
    if not include_synthetic and not df.empty:
        df = df[df["synthetic"].isna()]
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
        fb = read_feedback(settings, fb_start, fb_end, cursor)
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


# ---- lineage of a prediction ------------------------------------------------------------------
#: Version tags a lineage id digests (the lineage contract of driftloop.registry.tracking).
TAG_RUN_ID, TAG_DATA_REV, TAG_FEATURE_SERVICE = (
    "driftloop.run_id",
    "driftloop.data_rev",
    "driftloop.feature_service",
)
_LINEAGE_ID = re.compile(r"^([1-9][0-9]{0,8})\.([0-9a-f]{8})\.([0-9a-f]{8})\.([0-9a-f]{8})$")


def _digest8(value: str | None) -> str:
    return hashlib.sha256((value or "").encode("utf-8")).hexdigest()[:8]


def lineage_id(
    version: str | int, run_id: str | None, data_rev: str | None, feature_service: str | None
) -> str:
    """``{version}.{run}.{data}.{features}``: the model version and 8 hex digits of the SHA-256
    of its training run id, data revision and feature service name (``3.1f0c...``). Stable for
    a version (its tags do not change after registration), safe in a URL path, and computed
    once per loaded version, never per request; :func:`resolve_lineage` turns it back into the
    full lineage."""
    return ".".join((str(version), _digest8(run_id), _digest8(data_rev), _digest8(feature_service)))


def version_lineage_id(info: VersionInfo) -> str:
    """The lineage id of a registered version (from its lineage tags)."""
    tags = info.tags
    return lineage_id(
        info.version,
        tags.get(TAG_RUN_ID) or info.run_id,
        tags.get(TAG_DATA_REV),
        tags.get(TAG_FEATURE_SERVICE),
    )


def parse_lineage_id(text: str) -> str:
    """The model version a lineage id names; InvalidInputError (400) for anything that is not
    of the form ``{version}.{8 hex}.{8 hex}.{8 hex}``."""
    found = _LINEAGE_ID.match(text) if len(text) <= 64 else None
    if found is None:
        shown = text if len(text) <= 64 else f"{text[:64]}..."
        raise InvalidInputError(
            f"malformed lineage id {shown!r}: expected '<version>.<8 hex>.<8 hex>.<8 hex>' "
            "(the lineage_id of an inference response)"
        )
    return found.group(1)


def _json_tag(tags: dict[str, str], key: str) -> Any:
    try:
        return json.loads(tags[key]) if key in tags else None
    except json.JSONDecodeError:
        return tags[key]


def resolve_lineage(
    text: str, settings: Settings | None = None, name: str | None = None
) -> dict[str, Any]:
    """The full lineage behind a lineage id: model version, training run, data revision and
    partition hashes, feature service, git commit, and links (MLflow version and run pages, the
    latest drift report). InvalidInputError when malformed; NotFoundError when the version does
    not exist or its lineage is not the one the id names (a forged or foreign id)."""
    from driftloop.registry.client import get_version  # the registry only for this look-up
    from driftloop.registry.json_tags import expand_json_tags  # (and its artifacts)

    settings = settings or get_settings()
    name = name or settings.mlflow.registered_model
    version = parse_lineage_id(text)
    try:
        info = get_version(version, settings, name)
    except NotFoundError:
        raise NotFoundError(
            f"unknown lineage id {text!r}: model {name} has no version {version}"
        ) from None
    actual = version_lineage_id(info)
    if actual != text:
        raise NotFoundError(
            f"unknown lineage id {text!r}: version {version} of {name} has lineage id {actual} "
            "(another run, data revision or feature service)"
        )
    # large JSON tags (the partition hashes) live as run artifacts behind a pointer tag
    tags = expand_json_tags(info.tags, settings)
    run_id = tags.get(TAG_RUN_ID) or info.run_id
    ui = str(getattr(settings.mlflow, "public_url", None) or settings.mlflow.uri).rstrip("/")
    links = {"model_version": f"{ui}/#/models/{name}/versions/{version}"}
    if run_id:
        links["run"] = f"{ui}/#/runs/{run_id}"
    report = tags.get("driftloop.drift.report", "")
    if report.startswith(("http://", "https://")):
        links["drift_report"] = report
    return {
        "lineage_id": text,
        "model_name": info.name,
        "model_version": info.version,
        "aliases": list(info.aliases),
        "run_id": run_id,
        "data_rev": tags.get(TAG_DATA_REV),
        "data_hashes": _json_tag(tags, "driftloop.data_hashes"),
        "feature_service": tags.get(TAG_FEATURE_SERVICE),
        "git_commit": tags.get("driftloop.git_commit"),
        "train_window": tags.get("driftloop.train_window"),
        "threshold": tags.get("driftloop.threshold"),
        "links": links,
    }


#: Columns :func:`request_lineage` reads.
_LOOKUP_COLUMNS = ("request_id", "ts", "variant", "served", "model_name", "model_version")


def request_lineage(request_id: str, settings: Settings | None = None) -> list[dict[str, Any]]:
    """The captured calls of one request id (one per model call: the answer, a shadow copy, a
    failed challenger call), newest file first: ts, variant, served, model and version, its
    ``lineage_id`` (None in files from before the column) and ``synthetic`` mark. Reads only
    those columns, filtered to the id."""
    settings = settings or get_settings()
    found: dict[tuple[Any, ...], dict[str, Any]] = {}
    for path in reversed(_files(PREDICTIONS, settings, None, None)):
        try:
            names = set(pq.read_schema(path).names)
            wanted = [*_LOOKUP_COLUMNS, "lineage_id", "synthetic"]
            table = pq.read_table(
                path,
                columns=[c for c in wanted if c in names],
                filters=pc.field("request_id") == request_id,
            )
        except (OSError, ValueError, pa.ArrowException) as exc:  # removed, or not ours
            logger.warning("skipping unreadable capture file %s: %s", path, exc)
            continue
        for row in table.to_pylist():
            row.setdefault("lineage_id", None)
            row.setdefault("synthetic", None)
            key = (row["ts"], row["variant"], row["model_version"], row["served"])
            found.setdefault(key, row)
    return sorted(found.values(), key=lambda r: (r["ts"] is None, r["ts"]), reverse=True)
