"""Statistics shared by the evaluation gate, the monitor and the canary analysis (foundation
layer: numpy only, importable from anywhere)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any

import numpy as np


def roc_auc(labels: Any, scores: Any) -> float:
    """ROC AUC of ``scores`` against 0/1 ``labels`` over the rows where both are known; NaN
    when it is undefined (fewer than two such rows, or only one class among them)."""
    y = np.asarray(labels, dtype=np.float64)
    p = np.asarray(scores, dtype=np.float64)
    known = np.isfinite(y) & np.isfinite(p)
    y, p = y[known], p[known]
    if len(y) < 2 or not 0 < y.sum() < len(y):
        return math.nan
    # scikit-learn costs ~0.5 s to import: paid by the first AUC, not by every importer.
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y.astype(int), p))


def finite_or_none(value: float | None) -> float | None:
    """``value`` when it is a finite number, else None (JSON and MLflow reject NaN)."""
    return value if value is not None and math.isfinite(value) else None


def midranks(values: Any) -> np.ndarray:
    """1-based ranks of ``values``, tied values sharing the mean of their ranks."""
    values = np.asarray(values, dtype=np.float64)
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], len(values)]
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.repeat((starts + 1 + ends) / 2.0, ends - starts)
    return ranks


def delong_components(positives: Any, negatives: Any) -> tuple[float, np.ndarray, np.ndarray]:
    """AUC and DeLong's structural components from midranks (Sun & Xu 2014): for each
    positive the share of negatives scored below it, for each negative the share of positives
    scored above it (ties count 1/2)."""
    positives = np.asarray(positives, dtype=np.float64)
    negatives = np.asarray(negatives, dtype=np.float64)
    m, n = len(positives), len(negatives)
    combined = midranks(np.concatenate([positives, negatives]))
    auc = (combined[:m].sum() - m * (m + 1) / 2) / (m * n)
    v10 = (combined[:m] - midranks(positives)) / n
    v01 = 1 - (combined[m:] - midranks(negatives)) / m
    return float(auc), v10, v01


def delong(positives: Any, negatives: Any) -> tuple[float, float]:
    """AUC and its DeLong variance (needs at least two rows of each class)."""
    auc, v10, v01 = delong_components(positives, negatives)
    return auc, float(v10.var(ddof=1) / len(v10) + v01.var(ddof=1) / len(v01))


@dataclass(frozen=True)
class PairedAucGain:
    """ROC AUC of ``a`` minus that of ``b`` on the same labelled rows, with DeLong's paired
    variance, and its one-sided lower bound at ``confidence``."""

    estimate: float
    lower: float
    standard_error: float
    rows: int
    confidence: float
    method: str = "paired DeLong"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def paired_auc_gain(labels: Any, a: Any, b: Any, confidence: float = 0.95) -> PairedAucGain | None:
    """``AUC(a) - AUC(b)`` on the rows where the label and both scores are known (DeLong,
    DeLong & Clarke-Pearson 1988: the two AUCs are correlated, so the variance of the
    difference uses their covariance). None unless each class has at least 2 rows."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    y = np.asarray(labels, dtype=np.float64)
    pa, pb = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if not y.shape == pa.shape == pb.shape:
        raise ValueError(f"labels and scores differ in length: {y.shape}, {pa.shape}, {pb.shape}")
    known = np.isfinite(y) & np.isfinite(pa) & np.isfinite(pb)
    y, pa, pb = y[known], pa[known], pb[known]
    pos, neg = y == 1, y == 0
    if pos.sum() < 2 or neg.sum() < 2:
        return None
    auc_a, v10_a, v01_a = delong_components(pa[pos], pa[neg])
    auc_b, v10_b, v01_b = delong_components(pb[pos], pb[neg])
    s10 = np.cov(np.vstack([v10_a, v10_b]), ddof=1)
    s01 = np.cov(np.vstack([v01_a, v01_b]), ddof=1)
    var = (s10[0, 0] + s10[1, 1] - 2 * s10[0, 1]) / pos.sum() + (
        s01[0, 0] + s01[1, 1] - 2 * s01[0, 1]
    ) / neg.sum()
    se = math.sqrt(max(float(var), 0.0))
    gain = auc_a - auc_b
    return PairedAucGain(gain, gain - NormalDist().inv_cdf(confidence) * se, se, len(y), confidence)


@dataclass(frozen=True)
class MedianBound:
    """A distribution-free one-sided lower confidence bound on a median (sign test): the
    ``order``-th smallest of ``n`` values, which lies below the median with probability at
    least ``1 - achieved_alpha``."""

    median: float
    lower: float
    order: int
    n: int
    achieved_alpha: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def median_lower_bound(values: Any, alpha: float) -> MedianBound | None:
    """The largest order statistic ``x_(k)`` with ``P(Binomial(n, 1/2) <= k - 1) <= alpha``:
    then ``P(x_(k) > median) <= alpha`` for any continuous distribution of independent values.
    None when even the smallest value is not a bound at ``alpha`` (``0.5 ** n > alpha``: too few
    values; 5 are needed at 0.05)."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    ordered = np.sort(np.asarray(values, dtype=np.float64))
    if len(ordered) == 0 or not np.all(np.isfinite(ordered)):
        raise ValueError("the values must be finite and at least one")
    n = len(ordered)
    cdf, order, achieved = 0.0, 0, 0.0
    for k in range(n):  # cdf = P(Binomial(n, 1/2) <= k)
        cdf += math.comb(n, k) / 2.0**n
        if cdf > alpha:
            break
        order, achieved = k + 1, cdf
    if order == 0:
        return None
    return MedianBound(float(np.median(ordered)), float(ordered[order - 1]), order, n, achieved)
