"""Statistics shared by the evaluation gate, the monitor and the canary analysis (foundation
layer: numpy only, importable from anywhere)."""

from __future__ import annotations

import math
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
