"""Permutation importance of each model input on a holdout sample (ROC AUC drop)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from driftloop.schema import LABEL, MODEL_INPUT_COLUMNS
from driftloop.stats import roc_auc


def permutation_importance(
    predict: Callable[[pd.DataFrame], np.ndarray],
    frame: pd.DataFrame,
    columns: list[str] | None = None,
    repeats: int = 2,
    max_rows: int = 5000,
    seed: int = 0,
) -> pd.DataFrame:
    """Mean and std of the ROC AUC drop when one column is shuffled, most important first."""
    columns = columns or list(MODEL_INPUT_COLUMNS)
    rng = np.random.default_rng(seed)
    sample = frame.sample(min(max_rows, len(frame)), random_state=seed).reset_index(drop=True)
    y = sample[LABEL].to_numpy(dtype=np.float64)
    if not 0 < y.sum() < len(y):
        return pd.DataFrame(columns=["feature", "importance_mean", "importance_std"])
    base = roc_auc(y, predict(sample))
    rows = []
    for col in columns:
        drops = []
        for _ in range(repeats):
            shuffled = sample.copy()
            shuffled[col] = sample[col].to_numpy()[rng.permutation(len(sample))]
            drops.append(base - roc_auc(y, predict(shuffled)))
        rows.append(
            {
                "feature": col,
                "importance_mean": float(np.mean(drops)),
                "importance_std": float(np.std(drops)),
            }
        )
    out = pd.DataFrame(rows).sort_values("importance_mean", ascending=False)
    return out.reset_index(drop=True)


def plot_importance(table: pd.DataFrame, path: Path) -> Path:
    """A horizontal bar chart of the importance table (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, max(3.0, 0.3 * len(table) + 1)))
    shown = table.iloc[::-1]
    ax.barh(shown["feature"], shown["importance_mean"], xerr=shown["importance_std"])
    ax.set_xlabel("ROC AUC drop when shuffled")
    ax.set_title("Permutation importance (holdout sample)")
    return _save(fig, path)


def plot_reliability(table: pd.DataFrame, path: Path) -> Path:
    """Reliability diagram of a calibration table (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    filled = table[table["rows"] > 0]
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey")
    ax.plot(filled["mean_predicted"], filled["observed_rate"], marker="o")
    ax.set_xlabel("mean predicted P(late)")
    ax.set_ylabel("observed late rate")
    ax.set_title("Reliability (holdout)")
    return _save(fig, path)


def _save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
