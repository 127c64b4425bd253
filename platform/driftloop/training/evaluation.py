"""Evaluation on the holdout month: metrics, calibration, slices, baselines and the gate.

Metrics: ROC AUC, log loss, Brier score, precision and recall at the cost-optimal threshold
(false negatives cost ``settings.kpi.cost_false_negative``, false positives
``settings.kpi.cost_false_positive``: the KPI's error costs), expected calibration error with a
reliability table. The model's threshold is registered with its version (tag
``driftloop.threshold``) and is where serving cuts ``is_late``. Baselines: a naive carrier x
origin late rate from the training window (global rate fallback) and a logistic regression on
the model's preprocessed features. The gate decides which alias (if any) a new version gets;
besides ROC AUC it judges slices and error-rate gaps between carriers and between origins
(:mod:`driftloop.training.fairness`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from driftloop.inference.preprocessing import Preprocessor
from driftloop.schema import LABEL
from driftloop.settings import TrainingSettings
from driftloop.stats import roc_auc
from driftloop.training.fairness import FairnessVerdict

SLICE_COLUMNS = ("carrier", "origin")
_EPS = 1e-7


# ---- metrics --------------------------------------------------------------------------------
def cost_optimal_threshold(
    y: np.ndarray, p: np.ndarray, cost_fn: float, cost_fp: float
) -> tuple[float, float]:
    """``(threshold, cost per row)`` minimising FN*cost_fn + FP*cost_fp over every cut."""
    order = np.argsort(-p, kind="mergesort")
    ps, ys = p[order], y[order]
    tp = np.cumsum(ys)
    fp = np.cumsum(1 - ys)
    # A cut may only sit between distinct scores: keep the last index of each score run.
    last = np.r_[ps[1:] != ps[:-1], True]
    tp, fp, cut_scores = tp[last], fp[last], ps[last]
    fn = ys.sum() - tp
    costs = np.r_[ys.sum() * cost_fn, fn * cost_fn + fp * cost_fp]  # first: predict none late
    best = int(np.argmin(costs))
    threshold = 1.0 + _EPS if best == 0 else float(cut_scores[best - 1])
    return threshold, float(costs[best] / max(len(y), 1))


def calibration_table(y: np.ndarray, p: np.ndarray, bins: int = 10) -> pd.DataFrame:
    """Reliability table over equal-width probability bins."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    rows = []
    for b in range(bins):
        mask = which == b
        n = int(mask.sum())
        rows.append(
            {
                "bin": b,
                "lower": edges[b],
                "upper": edges[b + 1],
                "rows": n,
                "mean_predicted": float(p[mask].mean()) if n else math.nan,
                "observed_rate": float(y[mask].mean()) if n else math.nan,
            }
        )
    return pd.DataFrame(rows)


def expected_calibration_error(table: pd.DataFrame) -> float:
    filled = table[table["rows"] > 0]
    total = filled["rows"].sum()
    if total == 0:
        return math.nan
    gaps = (filled["mean_predicted"] - filled["observed_rate"]).abs()
    return float((gaps * filled["rows"]).sum() / total)


def binary_metrics(
    y: np.ndarray, p: np.ndarray, cost_fn: float = 5.0, cost_fp: float = 1.0
) -> dict[str, float]:
    """The holdout metrics of one scorer (NaN where a metric is undefined)."""
    from sklearn.metrics import brier_score_loss, log_loss

    y = np.asarray(y, dtype=np.float64)
    p = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1 - _EPS)
    threshold, cost = cost_optimal_threshold(y, p, cost_fn, cost_fp)
    pred = p >= threshold
    tp = float((pred & (y == 1)).sum())
    precision = tp / pred.sum() if pred.sum() else math.nan
    recall = tp / y.sum() if y.sum() else math.nan
    return {
        "roc_auc": roc_auc(y, p),
        "log_loss": float(log_loss(y, p, labels=[0, 1])),
        "brier": float(brier_score_loss(y, p)),
        "threshold": threshold,
        "precision": float(precision),
        "recall": float(recall),
        "cost_per_row": cost,
        "ece": expected_calibration_error(calibration_table(y, p)),
        "rows": float(len(y)),
        "late_rate": float(y.mean()) if len(y) else math.nan,
    }


def slice_metrics(
    frame: pd.DataFrame, p: np.ndarray, columns: tuple[str, ...] = SLICE_COLUMNS
) -> pd.DataFrame:
    """ROC AUC, rows and rates per value of each slice column."""
    y = frame[LABEL].to_numpy(dtype=np.float64)
    rows = []
    for col in columns:
        keys = frame[col].astype(str).fillna("<missing>").to_numpy()
        for value in np.unique(keys):
            mask = keys == value
            ys, ps = y[mask], p[mask]
            auc = roc_auc(ys, ps)
            rows.append(
                {
                    "slice": col,
                    "value": value,
                    "rows": int(mask.sum()),
                    "roc_auc": float(auc),
                    "late_rate": float(ys.mean()),
                    "mean_predicted": float(ps.mean()),
                }
            )
    return pd.DataFrame(
        rows, columns=["slice", "value", "rows", "roc_auc", "late_rate", "mean_predicted"]
    )


# ---- baselines ------------------------------------------------------------------------------
@dataclass
class NaiveBaseline:
    """Historical late rate per carrier x origin from the training window; global fallback."""

    rates: dict[tuple[str, str], float]
    global_rate: float

    @classmethod
    def fit(cls, train: pd.DataFrame) -> NaiveBaseline:
        y = pd.to_numeric(train[LABEL]).astype("float64")
        grouped = y.groupby([train["carrier"].astype(str), train["origin"].astype(str)]).mean()
        return cls(rates={k: float(v) for k, v in grouped.items()}, global_rate=float(y.mean()))

    def predict_proba(self, df: pd.DataFrame) -> np.ndarray:
        keys = pd.MultiIndex.from_arrays([df["carrier"].astype(str), df["origin"].astype(str)])
        table = pd.Series(self.rates, dtype="float64")
        if len(table):
            table.index = pd.MultiIndex.from_tuples(table.index)
            out = table.reindex(keys).to_numpy(dtype=np.float64)
        else:
            out = np.full(len(df), np.nan)
        return np.where(np.isnan(out), self.global_rate, out)


@dataclass
class LogisticBaseline:
    """Logistic regression on the model's preprocessed features (one-hot codes + numerics)."""

    preprocessor: Preprocessor
    model: Any

    @staticmethod
    def _design(pre: Preprocessor, df: pd.DataFrame) -> Any:
        from scipy import sparse

        codes, numeric = pre.transform(df)
        offsets = np.cumsum([0, *pre.cardinalities[:-1]])
        cols = (codes + offsets).ravel()
        rows = np.repeat(np.arange(len(df)), codes.shape[1])
        onehot = sparse.csr_matrix(
            (np.ones(len(cols), dtype=np.float32), (rows, cols)),
            shape=(len(df), int(sum(pre.cardinalities))),
        )
        return sparse.hstack([onehot, sparse.csr_matrix(numeric)], format="csr")

    @classmethod
    def fit(cls, pre: Preprocessor, train: pd.DataFrame, seed: int = 0) -> LogisticBaseline:
        from sklearn.linear_model import LogisticRegression

        model = LogisticRegression(max_iter=300, C=1.0, random_state=seed)
        model.fit(cls._design(pre, train), train[LABEL].to_numpy(dtype=np.int64))
        return cls(preprocessor=pre, model=model)

    def predict_proba(self, df: pd.DataFrame) -> np.ndarray:
        proba: np.ndarray = self.model.predict_proba(self._design(self.preprocessor, df))
        return proba[:, 1]


# ---- gate -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class GateDecision:
    """``gate``: champion | challenger | rejected; ``alias`` to set (None when rejected)."""

    gate: str
    reason: str

    @property
    def alias(self) -> str | None:
        return None if self.gate == "rejected" else self.gate


def _slice_regressions(
    model: pd.DataFrame, champion: pd.DataFrame, tolerance: float, min_rows: int
) -> list[str]:
    merged = model.merge(champion, on=["slice", "value"], suffixes=("", "_champion"))
    judged = merged[(merged["rows"] >= min_rows) & merged["roc_auc"].notna()]
    judged = judged[judged["roc_auc_champion"].notna()]
    bad = judged[judged["roc_auc"] < judged["roc_auc_champion"] - tolerance]
    return [
        f"{r.slice}={r.value} {r.roc_auc:.3f} < {r.roc_auc_champion:.3f}" for r in bad.itertuples()
    ]


def decide_gate(
    model: dict[str, float],
    baseline: dict[str, float],
    training: TrainingSettings,
    champion: dict[str, float] | None = None,
    model_slices: pd.DataFrame | None = None,
    champion_slices: pd.DataFrame | None = None,
    champion_version: str | None = None,
    fairness: FairnessVerdict | None = None,
) -> GateDecision:
    """The alias a new version earns on the shared holdout, with the reason in words.
    ``fairness``: the error-rate gap rule against the champion
    (:func:`driftloop.training.fairness.judge_fairness`); a refusal rejects the version."""
    auc, base = model["roc_auc"], baseline["roc_auc"]
    need = base + training.gate_min_auc_gain_over_baseline
    if not auc >= need:  # also catches NaN
        return GateDecision(
            "rejected",
            f"ROC AUC {auc:.4f} does not beat the naive baseline {base:.4f} by "
            f"{training.gate_min_auc_gain_over_baseline:g}",
        )
    if champion is None:
        return GateDecision(
            "champion", f"no champion yet; ROC AUC {auc:.4f} beats the baseline {base:.4f}"
        )
    champ = champion["roc_auc"]
    if not auc >= champ + training.gate_min_auc_gain_over_champion:
        return GateDecision(
            "rejected",
            f"ROC AUC {auc:.4f} does not beat champion v{champion_version} {champ:.4f} by "
            f"{training.gate_min_auc_gain_over_champion:g} on the same holdout",
        )
    if model_slices is not None and champion_slices is not None:
        worse = _slice_regressions(
            model_slices,
            champion_slices,
            training.gate_slice_tolerance,
            training.gate_min_slice_rows,
        )
        if worse:
            return GateDecision(
                "rejected",
                f"slices degrade beyond {training.gate_slice_tolerance:g} vs champion "
                f"v{champion_version}: " + "; ".join(worse[:5]),
            )
    if fairness is not None and not fairness.allowed:
        return GateDecision("rejected", fairness.reason)
    return GateDecision(
        "challenger",
        f"ROC AUC {auc:.4f} beats baseline {base:.4f} and champion v{champion_version} "
        f"{champ:.4f}; no slice degrades"
        + (f"; {fairness.reason}" if fairness is not None else ""),
    )
