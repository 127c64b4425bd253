"""Always-valid statistics: intervals that stay right while the data is still arriving.

A canary is looked at again and again while traffic arrives. A fixed-horizon test looked at that
way rejects far more often than its alpha says ("peeking": Johari, Pekelis & Walsh, "Peeking at
A/B tests", KDD 2017). Every interval here is a *confidence sequence* instead: with probability
at least ``1 - alpha`` it covers the true value at every look simultaneously, so a decision may
be taken at any look, and a look that finds nothing costs nothing.

The sequence is the mixture sequential probability ratio test (mSPRT) with a normal mixture
(Robbins 1970; Johari, Koomen, Pekelis & Walsh, "Always valid inference: continuous monitoring
of A/B tests", Operations Research 70(3), 2022) inverted into an interval. For an estimate with
variance ``V`` and a ``N(0, tau^2)`` mixture over the true difference, the mSPRT statistic
``sqrt(V / (V + tau^2)) * exp(tau^2 d^2 / (2 V (V + tau^2)))`` crosses ``1 / alpha`` exactly when
``|d|`` exceeds::

    half_width(V) = sqrt( V (V + tau^2) / tau^2 * (2 log(1 / alpha) + log((V + tau^2) / V)) )

``V`` is estimated from the data (plug-in), which keeps the time-uniform coverage asymptotically
(Waudby-Smith, Arnold, Wu, Wang & Ramdas, "Time-uniform central limit theory and asymptotic
confidence sequences", Annals of Statistics 2024). ``tau`` sets which differences the sequence is
tightest for; callers use the decision's margin, the size of difference that matters.

Binary observations (an error flag) use the variance of ``(k + 1) / (n + 2)`` (a uniform prior's
posterior mean), so a handful of requests without an error is not mistaken for certainty.
Foundation layer: numpy and the standard library only.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

#: Variance below this counts as this (an exactly known difference still gets a finite width).
MIN_VARIANCE = 1e-12


@dataclass(frozen=True)
class MeanStats:
    """Sufficient statistics of a sample's mean: count, sum and sum of squares. ``binary``
    marks 0/1 observations (see the module docstring for their variance)."""

    n: int = 0
    total: float = 0.0
    total_sq: float = 0.0
    binary: bool = False

    @classmethod
    def of(cls, values: Any, binary: bool = False) -> MeanStats:
        """Statistics of the finite values of ``values``."""
        x = np.asarray(values, dtype=np.float64)
        x = x[np.isfinite(x)]
        return cls(len(x), float(x.sum()), float((x * x).sum()), binary)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MeanStats:
        return cls(
            int(data["n"]), float(data["total"]), float(data["total_sq"]), bool(data["binary"])
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else math.nan

    @property
    def variance(self) -> float:
        """Variance of one observation (sample variance; see ``binary``); inf below 2 rows."""
        if self.binary:
            if self.n == 0:
                return math.inf
            p = (self.total + 1.0) / (self.n + 2.0)
            return p * (1.0 - p)
        if self.n < 2:
            return math.inf
        var = (self.total_sq - self.total * self.total / self.n) / (self.n - 1)
        return max(var, 0.0)

    @property
    def variance_of_mean(self) -> float:
        return self.variance / self.n if self.n else math.inf


@dataclass(frozen=True)
class Bounds:
    """An estimate with its always-valid interval at level ``alpha``."""

    estimate: float
    low: float
    high: float
    variance: float
    alpha: float
    p_value: float

    def to_dict(self) -> dict[str, Any]:
        return {k: _finite(v) for k, v in asdict(self).items()}

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2.0

    def text(self, digits: int = 3) -> str:
        """``estimate ± half-width`` (``estimate [low, high]`` when the interval is not centred
        on the estimate) as printed in timelines and reasons."""
        if not math.isfinite(self.half_width):
            return f"{self.estimate:.{digits}f} ± inf"
        if abs((self.low + self.high) / 2 - self.estimate) > 10 ** -(digits + 1):
            return f"{self.estimate:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"
        return f"{self.estimate:.{digits}f} ± {self.half_width:.{digits}f}"


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def half_width(variance: float, alpha: float, tau: float) -> float:
    """Half-width of the normal-mixture confidence sequence for an estimate of ``variance``."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if tau <= 0.0:
        raise ValueError(f"the mixture scale tau must be positive, got {tau}")
    if not math.isfinite(variance):
        return math.inf
    v = max(variance, MIN_VARIANCE)
    t2 = tau * tau
    return math.sqrt(v * (v + t2) / t2 * (2.0 * math.log(1.0 / alpha) + math.log((v + t2) / v)))


def always_valid_p(estimate: float, variance: float, tau: float, null: float = 0.0) -> float:
    """The mSPRT's p-value ``min(1, 1 / Lambda)`` of ``estimate = null``: below alpha exactly
    when the confidence sequence at alpha excludes ``null``."""
    if not (math.isfinite(variance) and math.isfinite(estimate)):
        return 1.0
    v = max(variance, MIN_VARIANCE)
    t2 = tau * tau
    d = estimate - null
    log_lambda = 0.5 * math.log(v / (v + t2)) + t2 * d * d / (2.0 * v * (v + t2))
    return 1.0 if log_lambda <= 0 else math.exp(-log_lambda)


def bounds_for(estimate: float, variance: float, alpha: float, tau: float) -> Bounds:
    """Confidence sequence of an estimate with the given variance."""
    h = half_width(variance, alpha, tau)
    p = always_valid_p(estimate, variance, tau)
    return Bounds(estimate, estimate - h, estimate + h, variance, alpha, p)


def mean_bounds(x: MeanStats, alpha: float, tau: float) -> Bounds:
    """Confidence sequence of one sample's mean (a paired difference is one sample)."""
    return bounds_for(x.mean, x.variance_of_mean, alpha, tau)


def difference_bounds(a: MeanStats, b: MeanStats, alpha: float, tau: float) -> Bounds:
    """Confidence sequence of ``mean(b) - mean(a)`` for two independent samples."""
    return bounds_for(b.mean - a.mean, a.variance_of_mean + b.variance_of_mean, alpha, tau)


@dataclass(frozen=True)
class SrmResult:
    """Sample-ratio check: is the observed share of ``treated`` among ``total`` the expected?"""

    total: int
    treated: int
    expected_share: float
    observed_share: float
    chi_square: float
    p_value: float
    p_always_valid: float
    alpha: float
    mismatch: bool

    def to_dict(self) -> dict[str, Any]:
        return {k: _finite(v) if isinstance(v, float) else v for k, v in asdict(self).items()}

    def text(self) -> str:
        return (
            f"{self.treated} of {self.total} requests ({self.observed_share:.1%}) vs expected "
            f"{self.expected_share:.1%}: chi-square {self.chi_square:.2f}, p {self.p_value:.2g} "
            f"(always-valid p {self.p_always_valid:.2g}, halts below {self.alpha:g})"
        )


#: Mixture scale of the sample-ratio test: most sensitive to a share off by ~2 points.
SRM_TAU = 0.02


def sample_ratio_mismatch(
    treated: int, total: int, expected_share: float, alpha: float, min_total: int = 100
) -> SrmResult:
    """Chi-square goodness of fit (1 degree of freedom) of the treated share, with its
    always-valid p-value (the mSPRT on the share, scale :data:`SRM_TAU`), so re-checking it
    at every look does not inflate its error rate. A mismatch needs ``min_total`` requests
    (the normal approximation) and always-valid p below ``alpha``."""
    observed = treated / total if total else math.nan
    if total == 0 or not 0.0 < expected_share < 1.0:
        return SrmResult(total, treated, expected_share, observed, 0.0, 1.0, 1.0, alpha, False)
    var_share = expected_share * (1.0 - expected_share) / total
    z = (observed - expected_share) / math.sqrt(var_share)
    chi2 = z * z
    p_fixed = math.erfc(abs(z) / math.sqrt(2.0))
    p_valid = always_valid_p(observed, var_share, SRM_TAU, null=expected_share)
    mismatch = total >= min_total and p_valid < alpha
    return SrmResult(
        total, treated, expected_share, observed, chi2, p_fixed, p_valid, alpha, mismatch
    )
