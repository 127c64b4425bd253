"""Batch scoring: a month of ingested flights (or a parquet file of flights) scored by the
champion (or a given version) with historical features, written as parquet with the model's
lineage id, and recorded as an MLflow run.

Why each part is what it is:

- *Features* are Feast's point-in-time retrieval, the call training makes
  (:func:`driftloop.features.training_frame_from_flights`): each flight gets the feature rows
  known at its scheduled departure, so a batch score of a past month sees what the model would
  have seen live, not today's online values. Flights without an outcome (cancelled, or a file of
  future flights) are scored too: the outcome is not a model input, so they are retrieved with
  a placeholder outcome and their ``actual_is_late`` is null.
- *The model* is loaded by serving's own loader (:func:`serving.handles.load_handle`): the same
  integrity check, the same ``predict`` and the same decision threshold (tag
  ``driftloop.threshold``), so a batch prediction equals the API's for the same feature row.
- *The lineage id* is the one serving puts on every response and capture row
  (:func:`driftloop.data.capture.version_lineage_id`: the version and digests of its run, data
  revision and feature service); ``GET /v2/models/{name}/lineage/{id}`` and
  ``driftloop lineage`` resolve it, so every written row can be traced to what made it.
- *The run* in MLflow (experiment ``settings.mlflow.experiment``, tag
  ``driftloop.activity=batch_score``) records version, input, rows and rows per second, and the
  parquet itself when it is small (``settings.batch.artifact_max_mb``), else its path.

Bad input fails before anything is loaded: an unknown or not ingested month, a file that is
missing, not parquet, empty or lacks a column, a version that does not exist, a model without
a champion; each error is one line naming the problem.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from driftloop.data.capture import version_lineage_id
from driftloop.data.store import available_months, load_partitions
from driftloop.errors import DriftloopError, InvalidInputError, NotFoundError
from driftloop.features.store import require_sources
from driftloop.features.training import training_frame_from_flights
from driftloop.months import parse_month
from driftloop.registry import client as registry
from driftloop.registry import tracking
from driftloop.schema import (
    EVENT_TIMESTAMP,
    FLIGHT_KEY,
    LABEL,
    MODEL_INPUT_COLUMNS,
    OUTPUT_LABEL,
    OUTPUT_PROBABILITY,
)
from driftloop.settings import Settings, get_settings
from serving.handles import ModelHandle, load_handle

logger = logging.getLogger(__name__)

#: Columns a parquet file of flights must have (the flights partition's names); ``is_late``
#: (the outcome) is optional.
REQUIRED_COLUMNS = [
    FLIGHT_KEY,
    "carrier",
    "origin",
    "dest",
    "tailnum",
    "scheduled_departure",
    "distance",
]
#: The outcome where the input has one (null otherwise); never a model input.
ACTUAL = "actual_is_late"
LINEAGE_ID = "lineage_id"
#: Columns of the written predictions, in order.
OUTPUT_COLUMNS = [
    FLIGHT_KEY,
    "scheduled_departure",
    "tailnum",
    *MODEL_INPUT_COLUMNS,
    OUTPUT_PROBABILITY,
    OUTPUT_LABEL,
    "decision_threshold",
    ACTUAL,
    "model_name",
    "model_version",
    LINEAGE_ID,
]
ACTIVITY_TAG = "driftloop.activity"
ACTIVITY = "batch_score"


class BatchInputError(InvalidInputError):
    """The batch input (month or file) cannot be scored as given."""


@dataclass(frozen=True)
class BatchInput:
    """What to score: one ingested month, or a parquet file of flights."""

    month: str | None = None
    path: Path | None = None

    @classmethod
    def of(cls, month: str | None, path: str | Path | None) -> BatchInput:
        if (month is None) == (path is None):
            raise BatchInputError("give exactly one of a month (--month) or a file (--input)")
        if month is not None:
            return cls(month=parse_month(month))
        assert path is not None
        return cls(path=Path(path).expanduser().resolve())

    @property
    def label(self) -> str:
        """``2013-05`` or ``file:<absolute path>``: the run's ``input`` parameter."""
        return self.month if self.month is not None else f"file:{self.path}"

    @property
    def stem(self) -> str:
        """A file-name-safe name of the input."""
        raw = self.month if self.month is not None else Path(str(self.path)).stem
        return re.sub(r"[^A-Za-z0-9._-]+", "_", raw)


@dataclass
class BatchResult:
    """What one batch run scored, where it wrote it and how fast."""

    model: str
    version: str
    lineage_id: str
    threshold: float
    threshold_source: str
    input: str
    output: str
    rows: int
    predicted_late: int
    labelled: int
    seconds: float
    rows_per_s: float
    score_rows_per_s: float
    timings: dict[str, float] = field(default_factory=dict)
    run_id: str | None = None
    artifact: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        """One line for the CLI and the flow log."""
        return (
            f"scored {self.rows} flights of {self.input} with {self.model} v{self.version} "
            f"(lineage {self.lineage_id}, threshold {self.threshold:.4g} from "
            f"{self.threshold_source}): {self.predicted_late} predicted late, "
            f"{self.rows_per_s:,.0f} rows/s -> {self.output}"
            + (f" (MLflow run {self.run_id})" if self.run_id else "")
        )


# ---- input ------------------------------------------------------------------------------------
def read_flights(source: BatchInput, settings: Settings) -> pd.DataFrame:
    """The flights to score: the month's ingested partition, or the parquet file (checked for
    :data:`REQUIRED_COLUMNS`, rows and unique flight ids)."""
    if source.month is not None:
        present = available_months(settings)
        if source.month not in present:
            have = f"{present[0]}..{present[-1]}" if present else "none"
            raise NotFoundError(
                f"month {source.month} is not ingested (ingested months: {have}); run "
                f"driftloop ingest --from {source.month} --to {source.month} first"
            )
        return load_partitions("flights", [source.month], settings=settings)
    path = source.path
    assert path is not None
    if not path.is_file():
        raise NotFoundError(f"input file {path} does not exist")
    try:
        import pyarrow.parquet as pq

        flights = pq.read_table(path).to_pandas()
    except Exception as exc:
        raise BatchInputError(
            f"{path} is not a readable parquet file: {str(exc).splitlines()[0][:160]}"
        ) from None
    missing = [c for c in REQUIRED_COLUMNS if c not in flights.columns]
    if missing:
        raise BatchInputError(
            f"{path} lacks column(s) {', '.join(missing)}: a flights file needs "
            f"{', '.join(REQUIRED_COLUMNS)} (is_late optional)"
        )
    if flights.empty:
        raise BatchInputError(f"{path} has no rows")
    ids = flights[FLIGHT_KEY]
    if ids.isna().any():
        raise BatchInputError(f"{path}: {FLIGHT_KEY} is empty in row {int(ids.isna().argmax())}")
    if ids.duplicated().any():
        raise BatchInputError(f"{path}: duplicate {FLIGHT_KEY} {ids[ids.duplicated()].iloc[0]!r}")
    for col in ("carrier", "origin", "dest", "scheduled_departure", "distance"):
        if flights[col].isna().any():
            row = int(flights[col].isna().to_numpy().argmax())
            raise BatchInputError(f"{path}: column {col} is empty in row {row}")
    return flights


def feature_rows(flights: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    """Model input rows of ``flights`` with their point-in-time features (Feast offline store,
    the training retrieval), sorted by departure then flight id, with the outcome as
    :data:`ACTUAL` (null where unknown)."""
    require_sources(settings)
    work = flights.copy()
    work[FLIGHT_KEY] = work[FLIGHT_KEY].astype(str)
    actual = (
        pd.to_numeric(work[LABEL], errors="coerce")
        if LABEL in work.columns
        else pd.Series(np.nan, index=work.index)
    )
    # The retrieval keeps labelled rows only (training needs the outcome); scoring does not.
    work[LABEL] = 0
    try:
        frame = training_frame_from_flights(work, settings)
    except (ValueError, TypeError) as exc:
        raise BatchInputError(
            f"the flights do not parse: {str(exc).splitlines()[0][:200]}"
        ) from None
    outcome = dict(zip(work[FLIGHT_KEY], actual, strict=True))
    frame[ACTUAL] = frame[FLIGHT_KEY].map(outcome).astype("Int8")
    return frame.drop(columns=[LABEL])


# ---- model ------------------------------------------------------------------------------------
def resolve_version(version: str | None, settings: Settings) -> registry.VersionInfo:
    """The given version of the configured model, else its champion (one line if neither)."""
    name = settings.mlflow.registered_model
    if version is None:
        champion = registry.get_alias(registry.CHAMPION, settings, name)
        if champion is None:
            raise NotFoundError(
                f"model {name} has no champion: train one (driftloop train) or pass --version"
            )
        return champion
    version = str(version).strip()
    if not version.isdigit():
        raise BatchInputError(f"model version must be a number, not {version!r}")
    return registry.get_version(version, settings, name)


def score_frame(handle: ModelHandle, frame: pd.DataFrame, chunk_rows: int) -> np.ndarray:
    """P(late) of every row, ``chunk_rows`` rows per model call, through the handle serving
    uses (the same ``predict``); a failure or a non-finite value names the version."""
    inputs = frame[MODEL_INPUT_COLUMNS]
    out = np.empty(len(inputs), dtype=np.float64)
    for start in range(0, len(inputs), chunk_rows):
        chunk = inputs.iloc[start : start + chunk_rows]
        try:
            probs = handle.predict(chunk)
        except Exception as exc:
            raise DriftloopError(
                f"model {handle.name} version {handle.version} failed on rows "
                f"{start}..{start + len(chunk) - 1}: {type(exc).__name__}: {str(exc)[:200]}"
            ) from exc
        if probs.shape != (len(chunk),) or not np.isfinite(probs).all():
            raise DriftloopError(
                f"model {handle.name} version {handle.version} returned {probs.shape} values "
                f"for {len(chunk)} rows (expected finite probabilities)"
            )
        out[start : start + len(chunk)] = probs
    return out


def predictions_frame(
    frame: pd.DataFrame, probs: np.ndarray, handle: ModelHandle, lineage: str
) -> pd.DataFrame:
    """The written rows (:data:`OUTPUT_COLUMNS`): inputs, probability, the decision at the
    version's threshold (``probability >= threshold``, as the API answers), outcome, lineage."""
    out = frame.rename(columns={EVENT_TIMESTAMP: "scheduled_departure"}).copy()
    out[OUTPUT_PROBABILITY] = probs
    out[OUTPUT_LABEL] = (probs >= handle.threshold).astype(np.int8)
    out["decision_threshold"] = handle.threshold
    out["model_name"] = handle.name
    out["model_version"] = handle.version
    out[LINEAGE_ID] = lineage
    return out[OUTPUT_COLUMNS]


# ---- output -----------------------------------------------------------------------------------
def output_path(
    out: str | Path | None, source: BatchInput, version: str, settings: Settings
) -> Path:
    """``out`` when it names a ``.parquet`` file; a folder (``out``, else
    ``settings.batch.output_dir``, else ``{state}/batch``) gets ``<input>-v<version>.parquet``."""
    name = f"{source.stem}-v{version}.parquet"
    if out is None:
        folder = settings.batch.output_dir or settings.state / "batch"
        return Path(folder).expanduser().resolve() / name
    path = Path(out).expanduser().resolve()
    if path.suffix == ".parquet" and not path.is_dir():
        return path
    return path / name


def write_parquet(df: pd.DataFrame, path: Path) -> None:
    """Write atomically (a reader never sees half a file)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        df.to_parquet(tmp, index=False)
        os.replace(tmp, path)
    except OSError as exc:
        raise BatchInputError(f"cannot write {path}: {exc.strerror or exc}") from None


# ---- MLflow -----------------------------------------------------------------------------------
def log_run(result: BatchResult, settings: Settings) -> tuple[str, str]:
    """Record the batch run in MLflow; returns (run id, the logged artifact: the parquet itself
    when it is at most ``settings.batch.artifact_max_mb``, else ``batch/output.json``)."""
    tracking.setup_mlflow(settings)
    path = Path(result.output)
    small = path.stat().st_size <= settings.batch.artifact_max_mb * 1024 * 1024
    # MLflow prints the run's link to stdout when the run ends: stderr keeps stdout for the
    # command's own output (``--json``)
    with (
        contextlib.redirect_stdout(sys.stderr),
        tracking.start_run(
            run_name=f"batch-score {result.input} v{result.version}", log_system_metrics=False
        ) as run,
    ):
        tracking.set_tags(
            {
                ACTIVITY_TAG: ACTIVITY,
                "driftloop.model": result.model,
                "driftloop.model_version": result.version,
                "driftloop.lineage_id": result.lineage_id,
            }
        )
        tracking.log_params(
            {
                "version": result.version,
                "input": result.input,
                "rows": result.rows,
                "model": result.model,
                "threshold": result.threshold,
                "threshold_source": result.threshold_source,
                "lineage_id": result.lineage_id,
                "output": result.output,
            }
        )
        tracking.log_metrics(
            {
                "rows_per_s": result.rows_per_s,
                "score_rows_per_s": result.score_rows_per_s,
                "predicted_late_share": result.predicted_late / max(result.rows, 1),
                **{f"{k}_s": v for k, v in result.timings.items()},
            }
        )
        summary = {k: v for k, v in result.to_dict().items() if k not in ("run_id", "artifact")}
        tracking.log_json(summary, "batch/output.json")
        artifact = "batch/output.json"
        if small:
            tracking.log_artifact(str(path), "batch")
            artifact = f"batch/{path.name}"
        return str(run.info.run_id), artifact


# ---- the whole run ----------------------------------------------------------------------------
def batch_score(
    month: str | None = None,
    input_path: str | Path | None = None,
    version: str | None = None,
    out: str | Path | None = None,
    settings: Settings | None = None,
    log_to_mlflow: bool = True,
) -> BatchResult:
    """Score ``month`` (ingested) or the flights file ``input_path`` with ``version`` (default:
    the champion), write the predictions as parquet and log the run to MLflow."""
    settings = settings or get_settings()
    source = BatchInput.of(month, input_path)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    flights = read_flights(source, settings)
    info = resolve_version(version, settings)
    target = output_path(out, source, info.version, settings)
    timings["read"] = time.perf_counter() - t0

    t = time.perf_counter()
    handle = load_handle(info.name, info.version, settings)
    timings["load_model"] = time.perf_counter() - t
    t = time.perf_counter()
    frame = feature_rows(flights, settings)
    timings["features"] = time.perf_counter() - t
    t = time.perf_counter()
    probs = score_frame(handle, frame, settings.batch.chunk_rows)
    timings["score"] = time.perf_counter() - t
    lineage = handle.lineage_id or version_lineage_id(info)
    predictions = predictions_frame(frame, probs, handle, lineage)
    t = time.perf_counter()
    write_parquet(predictions, target)
    timings["write"] = time.perf_counter() - t
    seconds = time.perf_counter() - t0
    rows = len(predictions)
    result = BatchResult(
        model=info.name,
        version=info.version,
        lineage_id=lineage,
        threshold=handle.threshold,
        threshold_source=handle.threshold_source,
        input=source.label,
        output=str(target),
        rows=rows,
        predicted_late=int(predictions[OUTPUT_LABEL].sum()),
        labelled=int(predictions[ACTUAL].notna().sum()),
        seconds=seconds,
        rows_per_s=rows / seconds if seconds > 0 else float("inf"),
        score_rows_per_s=rows / timings["score"] if timings["score"] > 0 else float("inf"),
        timings={k: round(v, 4) for k, v in timings.items()},
    )
    if log_to_mlflow:
        result.run_id, result.artifact = log_run(result, settings)
    logger.info("%s", result.line())
    return result


def summary_json(result: BatchResult) -> str:
    return json.dumps(result.to_dict(), indent=2, default=str)
