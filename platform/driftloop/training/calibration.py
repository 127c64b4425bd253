"""Platt scaling of the model's probabilities, fitted on the validation rows of the training window.

The label-free performance estimate of the monitor (confidence-based performance estimation)
reads a model's served probabilities as the chance each flight is late, so they must be
calibrated. A :class:`Calibration` maps the net's probability ``p`` to
``sigmoid(slope * logit(p) + intercept)``; it is fitted on the validation rows (the latest share
of the training window, held out from fitting) and never on the holdout month the gate judges.

The map is monotone (the slope is kept positive), so ranking metrics such as ROC AUC do not
change. It is kept only when it helps out of sample: fitted on one half of the validation rows
and scored on the other (both ways), it must lower the log loss; otherwise, and when the
validation rows hold one class only, the identity is used and ``method`` says why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from driftloop.stats import finite_or_none
from driftloop.training.evaluation import calibration_table, expected_calibration_error

#: Probabilities are clipped to [EPS, 1 - EPS] before their logit is taken.
EPS = 1e-6
PLATT = "platt"
IDENTITY = "identity"
#: Pull towards the identity map: keeps the fit finite on separable validation rows.
_RIDGE = 1e-6
_MAX_NEWTON_STEPS = 100
_TOLERANCE = 1e-10
#: Out-of-sample log loss gain (nats per row) below which the fit is rounding, not calibration.
_MIN_GAIN = 1e-9


@dataclass(frozen=True)
class Calibration:
    """``p -> sigmoid(slope * logit(p) + intercept)``, with how it was fitted and what it did
    on the validation rows (``rows``; ECE and log loss before and after)."""

    slope: float = 1.0
    intercept: float = 0.0
    method: str = IDENTITY
    rows: int = 0
    ece_before: float = math.nan
    ece_after: float = math.nan
    log_loss_before: float = math.nan
    log_loss_after: float = math.nan

    @property
    def is_identity(self) -> bool:
        return self.slope == 1.0 and self.intercept == 0.0

    def apply(self, p: np.ndarray) -> np.ndarray:
        """Calibrated probabilities of ``p`` (vectorised; the identity returns ``p`` itself)."""
        if self.is_identity:
            return p
        return _sigmoid(self.slope * _logit(p) + self.intercept)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe record (NaN metrics as None)."""
        return {
            "slope": self.slope,
            "intercept": self.intercept,
            "method": self.method,
            "rows": self.rows,
            "ece_before": finite_or_none(self.ece_before),
            "ece_after": finite_or_none(self.ece_after),
            "log_loss_before": finite_or_none(self.log_loss_before),
            "log_loss_after": finite_or_none(self.log_loss_after),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibration:
        def number(key: str) -> float:
            value = data.get(key)
            return math.nan if value is None else float(value)

        return cls(
            slope=float(data["slope"]),
            intercept=float(data["intercept"]),
            method=str(data.get("method", PLATT)),
            rows=int(data.get("rows", 0)),
            ece_before=number("ece_before"),
            ece_after=number("ece_after"),
            log_loss_before=number("log_loss_before"),
            log_loss_after=number("log_loss_after"),
        )


def fit_platt(y: np.ndarray, p: np.ndarray) -> Calibration:
    """Platt scaling of probabilities ``p`` against 0/1 labels ``y``; the identity (``method``
    says why) when the validation rows hold one class or the fit does not lower the log loss
    out of sample."""
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    if y.shape != p.shape:
        raise ValueError(f"{len(y)} labels but {len(p)} probabilities")
    if not 0 < y.sum() < len(y):
        return _identity(y, p, "one class in the validation rows")
    x = _logit(p)
    slope, intercept = _newton(x, y)
    if not slope > 0:
        return _identity(y, p, f"platt slope {slope:.3g} is not positive")
    if not log_loss(y, _cross_fitted(x, y)) < log_loss(y, p) - _MIN_GAIN:
        return _identity(y, p, "platt did not help")
    fitted = Calibration(slope=slope, intercept=intercept, method=PLATT)
    return _measured(fitted, y, p)


def log_loss(y: np.ndarray, p: np.ndarray) -> float:
    """Mean binary cross-entropy, probabilities clipped to [EPS, 1 - EPS]."""
    q = np.clip(p, EPS, 1 - EPS)
    return float(-np.mean(y * np.log(q) + (1 - y) * np.log1p(-q)))


def ece(y: np.ndarray, p: np.ndarray) -> float:
    """Expected calibration error over the evaluation's reliability bins."""
    return expected_calibration_error(calibration_table(y, p))


def _identity(y: np.ndarray, p: np.ndarray, reason: str) -> Calibration:
    return _measured(Calibration(method=f"{IDENTITY} ({reason})"), y, p)


def _measured(calibration: Calibration, y: np.ndarray, p: np.ndarray) -> Calibration:
    after = calibration.apply(p)
    return Calibration(
        slope=calibration.slope,
        intercept=calibration.intercept,
        method=calibration.method,
        rows=len(y),
        ece_before=ece(y, p),
        ece_after=ece(y, after),
        log_loss_before=log_loss(y, p),
        log_loss_after=log_loss(y, after),
    )


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(p, EPS, 1 - EPS)
    out: np.ndarray = np.log(q) - np.log1p(-q)
    return out


def _sigmoid(z: np.ndarray) -> np.ndarray:
    out: np.ndarray = np.exp(-np.logaddexp(0.0, -z))
    return out


def _penalised_loss(w: np.ndarray, design: np.ndarray, y: np.ndarray) -> float:
    z = design @ w
    nll = float(np.mean(np.logaddexp(0.0, z) - y * z))
    return nll + 0.5 * _RIDGE * float((w[0] - 1.0) ** 2 + w[1] ** 2)


def _newton(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(slope, intercept) of the logistic regression of ``y`` on ``x``: damped Newton from the
    identity map, with a tiny ridge towards it."""
    design = np.column_stack([x, np.ones_like(x)])
    w = np.array([1.0, 0.0])
    loss = _penalised_loss(w, design, y)
    for _ in range(_MAX_NEWTON_STEPS):
        q = _sigmoid(design @ w)
        grad = design.T @ (q - y) / len(y) + _RIDGE * (w - [1.0, 0.0])
        hessian = (design * (q * (1 - q))[:, None]).T @ design / len(y) + _RIDGE * np.eye(2)
        step = np.linalg.solve(hessian, grad)
        t = 1.0
        while t > 1e-10:
            candidate = w - t * step
            new_loss = _penalised_loss(candidate, design, y)
            if new_loss <= loss:
                break
            t /= 2
        else:
            break  # no step lowers the loss: at the optimum within rounding
        w, improvement, loss = candidate, loss - new_loss, new_loss
        if improvement < _TOLERANCE:
            break
    return float(w[0]), float(w[1])


def _cross_fitted(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Calibrated probabilities of each half of the rows (alternate rows) from a fit on the
    other half: what the calibration does on rows it was not fitted on."""
    out = np.empty_like(x)
    halves = np.arange(len(x)) % 2 == 0
    for scored in (halves, ~halves):
        slope, intercept = _newton(x[~scored], y[~scored])
        out[scored] = _sigmoid(slope * x[scored] + intercept)
    return out
