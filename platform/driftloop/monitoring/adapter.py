"""The Evidently adapter: the only module that imports ``evidently`` (0.7 API).

:func:`compute_drift` compares the captured inputs and predictions of a window with a model
version's reference frame (a holdout sample logged at training) and returns a
:class:`DriftReport`: a plain :class:`DriftSummary` that the rest of driftloop reads, plus the
Evidently snapshots it can save as self-contained HTML and JSON.

What is measured:

- per-feature data drift (Evidently picks the test per column type and size: Wasserstein /
  Jensen-Shannon distances on more than 1,000 reference rows, K-S / chi-square p-values below,
  where ``settings.monitoring.column_drift_pvalue`` is the threshold) and the dataset-level share
  of drifted features;
- prediction drift of ``late_probability``;
- data quality: the dataset's counts (rows, missing values, constant/empty columns) and each
  feature's missing share;
- classification quality of the labelled rows (feedback), when enough have arrived.
"""

from __future__ import annotations

import json
import logging
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from driftloop.errors import InvalidInputError
from driftloop.schema import CATEGORICAL_COLUMNS, LABEL, NUMERIC_COLUMNS, OUTPUT_PROBABILITY
from driftloop.settings import MonitoringSettings
from driftloop.stats import finite_or_none, roc_auc

logger = logging.getLogger(__name__)

#: Evidently switches from p-value tests to distances above this many reference rows.
PVALUE_TEST_MAX_ROWS = 1000
#: Quality metrics kept in the summary (Evidently metric class -> summary key).
QUALITY_METRICS = {
    "RocAuc": "roc_auc",
    "Accuracy": "accuracy",
    "Precision": "precision",
    "Recall": "recall",
    "F1Score": "f1",
    "LogLoss": "log_loss",
}


@dataclass(frozen=True)
class ColumnDrift:
    """Drift of one column: the test Evidently chose, its score and verdict."""

    column: str
    method: str
    score: float
    threshold: float
    drifted: bool


@dataclass
class DriftSummary:
    """What a drift report found, as plain data (JSON round-trips through to_dict/from_dict)."""

    rows_reference: int
    rows_current: int
    rows_labeled: int
    drift_share: float
    drifted_columns: list[str]
    columns: dict[str, ColumnDrift]
    prediction_drift: ColumnDrift | None
    missing_share_reference: float
    missing_share_current: float
    missing_by_column: dict[str, float] = field(default_factory=dict)
    skipped_columns: list[str] = field(default_factory=list)
    quality: dict[str, float] = field(default_factory=dict)
    quality_reference: dict[str, float] = field(default_factory=dict)
    late_rate_reference: float | None = None
    late_rate_current: float | None = None
    mean_probability_reference: float | None = None
    mean_probability_current: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DriftSummary:
        data = dict(data)
        data["columns"] = {k: ColumnDrift(**v) for k, v in data.get("columns", {}).items()}
        if data.get("prediction_drift") is not None:
            data["prediction_drift"] = ColumnDrift(**data["prediction_drift"])
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class DriftReport:
    """A summary plus the Evidently snapshots behind it."""

    summary: DriftSummary
    snapshots: dict[str, Any]

    def evidently_json(self) -> dict[str, Any]:
        """Each snapshot as JSON-ready data (Evidently's own encoder)."""
        return {name: json.loads(snap.json()) for name, snap in self.snapshots.items()}

    def save_html(self, folder: Path) -> dict[str, Path]:
        """Write each snapshot as a self-contained HTML page: drift.html, quality.html."""
        folder.mkdir(parents=True, exist_ok=True)
        paths = {}
        for name, snap in self.snapshots.items():
            path = folder / f"{name}.html"
            snap.save_html(str(path))
            paths[name] = path
        return paths


def _check_columns(frame: pd.DataFrame, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InvalidInputError(f"{what} frame lacks column(s) {', '.join(missing)}")


def _prepare(frame: pd.DataFrame, categorical: list[str], numeric: list[str]) -> pd.DataFrame:
    out = pd.DataFrame(index=range(len(frame)))
    for c in categorical:
        values = frame[c].reset_index(drop=True)
        out[c] = values.astype("object").where(values.notna(), None)
    for c in numeric:
        out[c] = pd.to_numeric(frame[c].reset_index(drop=True), errors="coerce").astype("float64")
    return out


def _label(frame: pd.DataFrame) -> pd.Series:
    if LABEL not in frame.columns:
        return pd.Series(np.nan, index=range(len(frame)), dtype="float64")
    return pd.to_numeric(frame[LABEL].reset_index(drop=True), errors="coerce").astype("float64")


def _metric_kind(metric: dict[str, Any]) -> str:
    return str(metric.get("metric_name", "")).split("(", 1)[0]


def _drift_tests(snapshot: dict[str, Any]) -> dict[str, bool]:
    """metric id -> drifted, from Evidently's own value-drift tests (p-value or distance)."""
    out = {}
    for test in snapshot.get("tests", []):
        bound = test.get("bound_test") or {}
        if str(bound.get("type", "")).endswith("ValueDriftBoundTest"):
            out[test["metric_config"]["metric_id"]] = test.get("status") == "FAIL"
    return out


def _column_drifts(snapshot: dict[str, Any]) -> dict[str, ColumnDrift]:
    drifted = _drift_tests(snapshot)
    out = {}
    for metric in snapshot.get("metrics", []):
        if _metric_kind(metric) != "ValueDrift":
            continue
        cfg = metric.get("config", {})
        column = cfg["column"]
        out[column] = ColumnDrift(
            column=column,
            method=str(cfg.get("method")),
            score=float(metric["value"]),
            threshold=float(cfg.get("threshold") or 0.0),
            drifted=bool(drifted.get(metric["id"], False)),
        )
    return out


def _missing_by_column(snapshot: dict[str, Any], rows: int) -> dict[str, float]:
    out = {}
    for metric in snapshot.get("metrics", []):
        if _metric_kind(metric) != "MissingValueCount":
            continue
        column = metric.get("config", {}).get("column")
        value = metric.get("value")
        if column and isinstance(value, dict) and "share" in value:
            out[column] = float(value["share"])
        elif column and isinstance(value, int | float) and rows:
            out[column] = float(value) / rows
    return out


def _quality_metrics(snapshot: dict[str, Any]) -> dict[str, float]:
    out = {}
    for metric in snapshot.get("metrics", []):
        key = QUALITY_METRICS.get(_metric_kind(metric))
        value = metric.get("value")
        if key and isinstance(value, int | float) and np.isfinite(value):
            out[key] = float(value)
    return out


def _auc(labels: pd.Series, scores: pd.Series) -> float | None:
    return finite_or_none(
        roc_auc(labels.to_numpy(dtype=float, na_value=np.nan), scores.to_numpy(dtype=float))
    )


def _mean(values: pd.Series) -> float | None:
    values = values.dropna()
    return float(values.mean()) if len(values) else None


def _finite(values: pd.Series) -> pd.Series:
    return values.replace([-np.inf, np.inf], np.nan).dropna()


def _drift_on_all_rows(
    ref: pd.DataFrame,
    cur: pd.DataFrame,
    categorical: list[str],
    sampled: dict[str, ColumnDrift],
    threshold: float | None,
) -> dict[str, ColumnDrift]:
    """The drift of each column the (sampled) report judged, recomputed on all current rows
    with Evidently's own tests, chosen by its own rule (``get_stattest``: by reference size,
    type and distinct values) and cleaned as it cleans them (infinities and missing values
    dropped): the numbers a report on every row gives, without drawing every row."""
    # deferred: Evidently costs seconds at import; only a sampled report needs its stattests
    from evidently.legacy.calculations.stattests.registry import get_stattest
    from evidently.legacy.core import ColumnType

    out = {}
    for column in sampled:
        kind = ColumnType.Categorical if column in categorical else ColumnType.Numerical
        r, c = _finite(ref[column]), _finite(cur[column])
        test = get_stattest(r, c, kind, None)
        result = test(r, c, kind, threshold)
        out[column] = ColumnDrift(
            column=column,
            method=str(test.display_name),
            score=float(result.drift_score),
            threshold=float(result.actual_threshold),
            drifted=bool(result.drifted),
        )
    return out


def compute_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    settings: MonitoringSettings | None = None,
    categorical: list[str] | None = None,
    numeric: list[str] | None = None,
) -> DriftReport:
    """Compare ``current`` with ``reference`` (both with the model input columns and
    ``late_probability``; ``is_late`` where known) and return the report."""
    settings = settings or MonitoringSettings()
    categorical = list(CATEGORICAL_COLUMNS if categorical is None else categorical)
    numeric = list(NUMERIC_COLUMNS if numeric is None else numeric)
    if reference.empty or current.empty:
        raise InvalidInputError(
            f"cannot judge drift on an empty frame (reference {len(reference)} rows, "
            f"current {len(current)} rows)"
        )
    features = categorical + numeric
    for frame, what in ((reference, "reference"), (current, "current")):
        _check_columns(frame, [*features, OUTPUT_PROBABILITY], what)

    ref = _prepare(reference, categorical, [*numeric, OUTPUT_PROBABILITY])
    cur = _prepare(current, categorical, [*numeric, OUTPUT_PROBABILITY])
    # A column with no value on either side has no distribution to compare.
    skipped = [c for c in features if ref[c].isna().all() or cur[c].isna().all()]
    judged = [c for c in features if c not in skipped]
    if not judged:
        raise InvalidInputError("no feature column has values on both sides")
    ref_label, cur_label = _label(reference), _label(current)
    labeled = cur_label.notna()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from evidently import BinaryClassification, DataDefinition, Dataset, Report
        from evidently.metrics import MissingValueCount, ValueDrift
        from evidently.presets import ClassificationPreset, DataDriftPreset, DatasetStats

        cat_cols = [c for c in categorical if c in judged]
        num_cols = [c for c in numeric if c in judged]
        definition = DataDefinition(
            numerical_columns=[*num_cols, OUTPUT_PROBABILITY], categorical_columns=cat_cols
        )
        threshold = settings.column_drift_pvalue if len(ref) <= PVALUE_TEST_MAX_ROWS else None
        drift_report = Report(
            [
                DataDriftPreset(
                    columns=judged,
                    drift_share=settings.drift_share_threshold,
                    threshold=threshold,
                ),
                ValueDrift(column=OUTPUT_PROBABILITY, threshold=threshold),
                # Data quality: the dataset's counts (rows, empty and constant columns, missing
                # values) and each column's missing share. Not DataSummaryPreset: its per-column
                # value statistics build a plot per column and cost more than the drift itself
                # (about half of the whole report, whatever the row count).
                DatasetStats(),
                *(MissingValueCount(column=c) for c in judged),
            ],
            include_tests=True,
        )
        cols = [*judged, OUTPUT_PROBABILITY]
        # A large window is drawn from a seeded sample (the report's cost is its plots, and
        # they grow with the rows); its statistics are recomputed on all rows below.
        sampled = len(cur) > settings.report_max_rows
        shown = cur.sample(n=settings.report_max_rows, random_state=0) if sampled else cur
        drift_snap = drift_report.run(
            current_data=Dataset.from_pandas(shown[cols], data_definition=definition),
            reference_data=Dataset.from_pandas(ref[cols], data_definition=definition),
        )
        snapshots: dict[str, Any] = {"drift": drift_snap}

        quality: dict[str, float] = {}
        enough_labels = (
            int(labeled.sum()) >= settings.min_labeled_rows
            and cur_label[labeled].nunique() == 2
            and ref_label.dropna().nunique() == 2
        )
        if enough_labels:
            qdef = DataDefinition(
                numerical_columns=[OUTPUT_PROBABILITY],
                categorical_columns=[LABEL],
                classification=[
                    BinaryClassification(target=LABEL, prediction_probas=OUTPUT_PROBABILITY)
                ],
            )
            qcur = pd.DataFrame(
                {
                    LABEL: cur_label[labeled].astype(int).values,
                    OUTPUT_PROBABILITY: cur.loc[labeled, OUTPUT_PROBABILITY].values,
                }
            )
            rmask = ref_label.notna() & ref[OUTPUT_PROBABILITY].notna()
            qref = pd.DataFrame(
                {
                    LABEL: ref_label[rmask].astype(int).values,
                    OUTPUT_PROBABILITY: ref.loc[rmask, OUTPUT_PROBABILITY].values,
                }
            )
            qcur = qcur[qcur[OUTPUT_PROBABILITY].notna()]
            quality_snap = Report([ClassificationPreset()], include_tests=False).run(
                current_data=Dataset.from_pandas(qcur, data_definition=qdef),
                reference_data=Dataset.from_pandas(qref, data_definition=qdef),
            )
            snapshots["quality"] = quality_snap
            quality = _quality_metrics(json.loads(quality_snap.json()))

    drift_data = json.loads(drift_snap.json())
    column_drift = _column_drifts(drift_data)
    if sampled:
        column_drift = _drift_on_all_rows(ref, cur, cat_cols, column_drift, threshold)
    feature_drift = {c: d for c, d in column_drift.items() if c in judged}
    drifted = [c for c in judged if c in feature_drift and feature_drift[c].drifted]
    ref_auc = _auc(ref_label, ref[OUTPUT_PROBABILITY])
    summary = DriftSummary(
        rows_reference=len(ref),
        rows_current=len(cur),
        rows_labeled=int(labeled.sum()),
        drift_share=len(drifted) / len(judged),
        drifted_columns=drifted,
        columns=feature_drift,
        prediction_drift=column_drift.get(OUTPUT_PROBABILITY),
        missing_share_reference=float(ref[features].isna().to_numpy().mean()),
        missing_share_current=float(cur[features].isna().to_numpy().mean()),
        missing_by_column=(
            {c: float(cur[c].isna().mean()) for c in judged}  # all rows, not the drawn sample
            if sampled
            else _missing_by_column(drift_data, len(cur))
        ),
        skipped_columns=skipped,
        quality=quality,
        quality_reference={"roc_auc": ref_auc} if ref_auc is not None else {},
        late_rate_reference=_mean(ref_label),
        late_rate_current=_mean(cur_label),
        mean_probability_reference=_mean(ref[OUTPUT_PROBABILITY]),
        mean_probability_current=_mean(cur[OUTPUT_PROBABILITY]),
    )
    logger.info(
        "drift: %d/%d features drifted (share %.2f), %d current rows, %d labelled",
        len(drifted),
        len(judged),
        summary.drift_share,
        summary.rows_current,
        summary.rows_labeled,
    )
    return DriftReport(summary=summary, snapshots=snapshots)
