"""Per-row attributions of a served probability to each input: integrated gradients in NumPy.

What is attributed is the served probability, calibration included, with respect to the net's
own inputs: the embedding vector of each categorical (the attribution of a category is the sum
over its embedding dimensions, as ``LayerIntegratedGradients`` on the embedding layers gives)
and the numeric block (a numeric input's attribution is the sum of its scaled value's and its
missing indicator's). The attributions of a row sum to ``P(late | row) - P(late | baseline)`` up
to the convergence delta, reported per row.

The baseline is fixed per model version and derived from what the version stores: every numeric
input at its training mean (scaled value 0, not missing) and every categorical at the mean
embedding of its training vocabulary (the average known category; the unknown bucket when the
vocabulary is empty).

The integral is Gauss-Legendre quadrature on ``n_steps`` nodes, Captum's default method; the
gradient is exact backpropagation through the ReLU net (:meth:`NumpyNet.gradient`) in float64.
Training's Captum explainer (:class:`driftloop.training.explain.IntegratedGradientsExplainer`)
computes the same numbers with torch (a test holds them equal); serving uses this one, so a
serving process needs neither torch nor Captum.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from driftloop.inference.calibration import EPS, Calibration, sigmoid
from driftloop.inference.net import NumpyNet
from driftloop.inference.preprocessing import Preprocessor

#: Integration steps of integrated gradients (Gauss-Legendre; Captum's default). On driftloop's
#: ReLU nets the convergence delta is a few thousandths of a probability at this many steps.
DEFAULT_STEPS = 50
#: Interpolated points per forward pass (bounds the memory of a large request).
INTERNAL_BATCH = 8192
METHOD = "integrated_gradients"
BASELINE = "training means (numeric), mean embedding of the training vocabulary (categorical)"


@dataclass(frozen=True)
class Attributions:
    """Attributions of ``n`` rows to ``features`` (``values[i, j]``: row i, feature j): they
    sum per row to ``probability - baseline_probability`` up to ``delta`` (the convergence
    delta, ``sum(values[i]) - (probability[i] - baseline_probability)``)."""

    features: list[str]
    values: np.ndarray
    probability: np.ndarray
    baseline_probability: float
    delta: np.ndarray
    method: str = METHOD
    n_steps: int = DEFAULT_STEPS
    baseline: str = BASELINE


def gauss_legendre(n_steps: int) -> tuple[np.ndarray, np.ndarray]:
    """``(alphas, weights)`` of Gauss-Legendre quadrature on [0, 1] (Captum's nodes)."""
    if n_steps < 1:
        raise ValueError(f"n_steps must be at least 1, got {n_steps}")
    nodes, weights = np.polynomial.legendre.leggauss(n_steps)
    return 0.5 * (nodes + 1.0), 0.5 * weights


class IntegratedGradients:
    """Integrated gradients of a version's calibrated probability (see the module). Stateless
    after construction, so one instance serves concurrent calls."""

    def __init__(
        self,
        net: NumpyNet,
        preprocessor: Preprocessor,
        calibration: Calibration,
        n_steps: int = DEFAULT_STEPS,
    ) -> None:
        self.preprocessor = preprocessor
        self.calibration = calibration
        self.n_steps = n_steps
        self._alphas, self._weights = gauss_legendre(n_steps)
        self._net = net.as_float64()
        self._widths = [t.shape[1] for t in self._net.embeddings]
        self.features = [*preprocessor.categorical, *preprocessor.numeric]
        means = [t[1:].mean(axis=0) if t.shape[0] > 1 else t[0] for t in self._net.embeddings]
        self._baseline = np.concatenate([*means, np.zeros(preprocessor.n_numeric)])[None, :]
        self.baseline_probability = float(self._probability(self._baseline)[0])

    def _probability(self, x: np.ndarray) -> np.ndarray:
        """The served probability (calibration included) of the net's inputs ``x``."""
        return self.calibration.apply(sigmoid(self._net.forward(x)))

    def _served_gradient(self, x: np.ndarray) -> np.ndarray:
        """d P(served) / d x for each row of ``x``."""
        logit, grad = self._net.gradient(x)
        p = sigmoid(logit)
        d = p * (1.0 - p)  # d sigmoid / d logit
        cal = self.calibration
        if not cal.is_identity:
            q = np.clip(p, EPS, 1 - EPS)
            out = cal.apply(p)
            inside = (p >= EPS) & (p <= 1 - EPS)  # torch.clamp passes the gradient inclusively
            d = d * inside / (q * (1.0 - q)) * cal.slope * out * (1.0 - out)
        result: np.ndarray = grad * d[:, None]
        return result

    def inputs(self, df: pd.DataFrame | Mapping[str, Any]) -> np.ndarray:
        """The net's float64 inputs of each row: embedded categoricals, then the numeric block."""
        codes, numeric = self.preprocessor.transform(df)
        return np.concatenate(
            [self._net.embed(codes, np.float64), numeric.astype(np.float64)], axis=1
        )

    def explain(self, df: pd.DataFrame | Mapping[str, Any]) -> Attributions:
        """Attributions of each row of ``df`` (MODEL_INPUT_COLUMNS, as ``predict_proba`` takes
        it) to each input feature, in :attr:`features` order."""
        x = self.inputs(df)
        n, width = x.shape
        diff = x - self._baseline
        integral = np.zeros_like(x)
        rows = max(1, INTERNAL_BATCH // self.n_steps)  # rows per chunk of interpolated points
        for start in range(0, n, rows):
            part = diff[start : start + rows]
            points = self._baseline + self._alphas[:, None, None] * part[None, :, :]
            grads = self._served_gradient(points.reshape(-1, width))
            grads = grads.reshape(self.n_steps, len(part), width)
            integral[start : start + rows] = np.tensordot(self._weights, grads, axes=1)
        attr = diff * integral
        probability = self._probability(x)
        values = np.empty((n, len(self.features)), dtype=np.float64)
        start = 0
        for j, w in enumerate(self._widths):
            values[:, j] = attr[:, start : start + w].sum(axis=1)
            start += w
        k = len(self.preprocessor.numeric)
        values[:, len(self._widths) :] = attr[:, start : start + k] + attr[:, start + k :]
        delta = attr.sum(axis=1) - (probability - self.baseline_probability)
        return Attributions(
            features=list(self.features),
            values=values,
            probability=probability,
            baseline_probability=self.baseline_probability,
            delta=delta,
            n_steps=self.n_steps,
        )
