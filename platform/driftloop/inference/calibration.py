"""A fitted probability calibration, as a model version stores and applies it.

:class:`Calibration` maps the net's probability ``p`` to ``sigmoid(slope * logit(p) +
intercept)``. Fitting it (Platt scaling on the validation rows) is training's business
(:mod:`driftloop.training.calibration`); applying it is all inference needs, so this module
needs nothing but NumPy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from driftloop.stats import finite_or_none

#: Probabilities are clipped to [EPS, 1 - EPS] before their logit is taken.
EPS = 1e-6
PLATT = "platt"
IDENTITY = "identity"


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
        return sigmoid(self.slope * logit(p) + self.intercept)

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


def logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(p, EPS, 1 - EPS)
    out: np.ndarray = np.log(q) - np.log1p(-q)
    return out


def sigmoid(z: np.ndarray) -> np.ndarray:
    out: np.ndarray = np.exp(-np.logaddexp(0.0, -z))
    return out
