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

import numpy as np

from driftloop.inference.calibration import EPS, IDENTITY, PLATT, Calibration, logit, sigmoid
from driftloop.training.evaluation import calibration_table, expected_calibration_error

__all__ = ["EPS", "Calibration", "ece", "fit_platt", "log_loss"]

#: Pull towards the identity map: keeps the fit finite on separable validation rows.
_RIDGE = 1e-6
_MAX_NEWTON_STEPS = 100
_TOLERANCE = 1e-10
#: Out-of-sample log loss gain (nats per row) below which the fit is rounding, not calibration.
_MIN_GAIN = 1e-9


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
    x = logit(p)
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
        q = sigmoid(design @ w)
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
        out[scored] = sigmoid(slope * x[scored] + intercept)
    return out
