"""Explanations of the model: permutation importance of each input on a holdout sample (ROC
AUC drop), and per-row attributions of a prediction to each input (integrated gradients).

Per-row attributions (:class:`IntegratedGradientsExplainer`) use Captum's
``IntegratedGradients`` on the net's own inputs: the embedding vector of each categorical (the
attribution of a category is the sum over its embedding dimensions, as
``LayerIntegratedGradients`` on the embedding layers gives) and the numeric block (a numeric
input's attribution is the sum of its scaled value's and its missing indicator's). What is
attributed is the served probability, calibration included, so the attributions of a row sum
to ``P(late | row) - P(late | baseline)`` up to Captum's convergence delta (reported per row).

The baseline is fixed per model version and derived from what the version stores: every
numeric input at its training mean (scaled value 0, not missing) and every categorical at the
mean embedding of its training vocabulary (the average known category; the unknown bucket when
the vocabulary is empty). The computation runs in float64 on a copy of the net.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd
import torch

from driftloop.inference.attributions import (
    DEFAULT_STEPS,
    INTERNAL_BATCH,
    Attributions,
)
from driftloop.inference.calibration import EPS
from driftloop.schema import LABEL, MODEL_INPUT_COLUMNS
from driftloop.stats import roc_auc

if TYPE_CHECKING:  # the bundle imports the trainer; explanations need only its shape
    from driftloop.training.bundle import ModelBundle


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


class IntegratedGradientsExplainer:
    """Integrated gradients of a :class:`~driftloop.training.bundle.ModelBundle`'s calibrated
    probability (see the module); thread-safe (one float64 copy of the net, read only)."""

    def __init__(self, bundle: ModelBundle, n_steps: int = DEFAULT_STEPS) -> None:
        from captum.attr import IntegratedGradients  # loaded with the first explanation

        self.preprocessor = bundle.preprocessor
        self.calibration = bundle.calibration
        self.n_steps = n_steps
        net = copy.deepcopy(bundle.net).to("cpu").double().eval()
        for param in net.parameters():
            param.requires_grad_(False)
        self._net = net
        self._embeddings = [cast(torch.nn.Embedding, e) for e in net.embeddings]
        self._widths = [e.embedding_dim for e in self._embeddings]
        pre = self.preprocessor
        self.features = [*pre.categorical, *pre.numeric]
        rows = []
        for emb in self._embeddings:
            weight = emb.weight
            known = weight[1:] if weight.shape[0] > 1 else weight  # row 0: the unknown bucket
            rows.append(known.mean(dim=0))
        self._base_emb = torch.cat(rows).unsqueeze(0)
        self._base_num = torch.zeros(1, pre.n_numeric, dtype=torch.float64)
        self._ig = IntegratedGradients(self._forward)
        self._lock = threading.Lock()  # Captum's attribute() keeps per-call state on self
        with torch.no_grad():
            self.baseline_probability = float(self._forward(self._base_emb, self._base_num)[0])

    def _forward(self, embedded: torch.Tensor, numeric: torch.Tensor) -> torch.Tensor:
        """The served probability from embedded categoricals and the numeric block."""
        hidden = torch.cat([embedded, numeric], dim=1)
        linears = [m for m in self._net.mlp if isinstance(m, torch.nn.Linear)]
        for layer in linears[:-1]:
            hidden = torch.relu(layer(hidden))
        logit = linears[-1](hidden).squeeze(1)
        p = torch.sigmoid(logit)
        cal = self.calibration
        if cal.is_identity:
            return p
        q = p.clamp(EPS, 1 - EPS)
        return torch.sigmoid(cal.slope * torch.log(q / (1 - q)) + cal.intercept)

    def _embed(self, codes: np.ndarray) -> torch.Tensor:
        index = torch.from_numpy(codes)
        parts = [emb(index[:, j]) for j, emb in enumerate(self._embeddings)]
        return torch.cat(parts, dim=1).detach()

    def explain(self, df: pd.DataFrame | Mapping[str, Any]) -> Attributions:
        """Attributions of each row of ``df`` (MODEL_INPUT_COLUMNS, as ``predict_proba``
        takes it) to each input feature, in :attr:`features` order."""
        codes, numeric_block = self.preprocessor.transform(df)
        embedded = self._embed(codes)
        numeric = torch.from_numpy(numeric_block.astype(np.float64))
        n = embedded.shape[0]
        with self._lock:
            (attr_emb, attr_num), delta = self._ig.attribute(
                (embedded, numeric),
                baselines=(self._base_emb, self._base_num),
                n_steps=self.n_steps,
                method="gausslegendre",
                internal_batch_size=max(self.n_steps, INTERNAL_BATCH),
                return_convergence_delta=True,
            )
        with torch.no_grad():
            probability = self._forward(embedded, numeric).numpy()
        values = np.empty((n, len(self.features)), dtype=np.float64)
        emb = attr_emb.detach().numpy()
        start = 0
        for j, width in enumerate(self._widths):
            values[:, j] = emb[:, start : start + width].sum(axis=1)
            start += width
        num = attr_num.detach().numpy()
        k = len(self.preprocessor.numeric)
        values[:, len(self._widths) :] = num[:, :k] + num[:, k:]
        return Attributions(
            features=list(self.features),
            values=values,
            probability=probability.astype(np.float64),
            baseline_probability=self.baseline_probability,
            delta=delta.detach().numpy().astype(np.float64).reshape(n),
            n_steps=self.n_steps,
        )
