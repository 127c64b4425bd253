"""Performance of a served model with honest intervals: estimated without labels, observed with.

Why: the monitor must tell whether the served model is below its KPI *by more than the
uncertainty*, long before the labels (did the flight arrive late?) come back, and must judge the
observed metrics fairly once they do. Every number here is therefore an :class:`Interval`.

Estimation without labels: confidence-based performance estimation (CBPE). If the scores are
calibrated, a row with score ``p_i`` is late with probability ``p_i``, independently of the
other rows, so the unknown labels are ``y_i ~ Bernoulli(p_i)``. Drawing label vectors from that
law gives the distribution of the metric the labels *would* produce on these rows: its mean is
the estimate and its central quantiles the interval (the interval covers the realised metric,
the one these rows' labels will give, not a population value).

- ROC AUC: each simulated AUC comes from the rank-sum (Mann-Whitney) formula, the scores ranked
  once with midranks for ties, the rank sums of all simulations one matrix product.
- Log loss: the expected value under calibration is exactly the mean binary entropy of the
  scores; the interval comes from the same label simulations.

Assumption (and blind spot): the scores are calibrated on the reference data and ``P(y | score)``
has not changed since, i.e. only the distribution of the inputs moved (covariate shift). CBPE
cannot see concept shift or label (prior) shift: when the same score now means a different
chance of being late, the estimate follows the scores and misses the change. Only labelled rows
can reveal that: :func:`observed_roc_auc`, :func:`observed_log_loss` and
:func:`calibration_gap` (a signed ``mean(p - y)``, positive when the model over-predicts), and
:func:`reconcile` to compare an estimate with what the labels showed.

Observed AUC intervals use DeLong's variance, computed from midranks as in Sun & Xu; the mean
metrics (log loss, calibration gap) use the central limit theorem. Rows where a label or a
score is not finite are ignored throughout.

Sources:

- NannyML documentation, "Estimating performance without targets" (Confidence-based
  Performance Estimation, CBPE).
- E. R. DeLong, D. M. DeLong, D. L. Clarke-Pearson (1988), "Comparing the areas under two or
  more correlated receiver operating characteristic curves: a nonparametric approach",
  Biometrics 44:837-845.
- X. Sun, W. Xu (2014), "Fast implementation of DeLong's algorithm for comparing the areas
  under correlated receiver operating characteristic curves", IEEE Signal Processing Letters
  21(11):1389-1393.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any

import numpy as np
import numpy.typing as npt

from driftloop.stats import delong as _delong
from driftloop.stats import midranks as _midranks

FloatArray = npt.NDArray[np.float64]

EPS = 1e-7
"""Scores are clipped to ``[EPS, 1 - EPS]`` inside a log loss (a score of 0 or 1 is infinite)."""

MIN_VALID_SHARE = 0.5
"""The CBPE AUC is None when fewer than this share of simulations hold both classes."""

_CHUNK_CELLS = 1 << 22
"""Label simulations are drawn this many cells (rows x simulations) at a time (32 MiB)."""


@dataclass(frozen=True)
class Interval:
    """A metric, its point estimate and its interval at ``confidence``."""

    metric: str
    estimate: float
    low: float
    high: float
    rows: int
    method: str
    confidence: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def text(self, digits: int = 3) -> str:
        """E.g. ``0.712 [0.690, 0.733]``."""
        return f"{self.estimate:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"


# --- label-free estimates (CBPE) ------------------------------------------------------------


def estimate_roc_auc(
    p: Any, confidence: float = 0.95, simulations: int = 400, seed: int = 0
) -> Interval | None:
    """The ROC AUC the (unknown) labels of these rows should give, if the scores are calibrated.

    None with fewer than 2 scored rows, or when fewer than :data:`MIN_VALID_SHARE` of the
    simulated label vectors hold both classes (the AUC is undefined on the others: dropped).
    """
    _check_confidence(confidence)
    scores = _scores(p)
    if len(scores) < 2:
        return None
    ranks = _midranks(scores)
    aucs = _simulate(scores, simulations, seed, lambda labels: _rank_sum_auc(labels, ranks))
    aucs = aucs[np.isfinite(aucs)]
    if len(aucs) < MIN_VALID_SHARE * simulations:
        return None
    low, high = _central_quantiles(aucs, confidence)
    return Interval(
        "roc_auc",
        float(aucs.mean()),
        low,
        high,
        len(scores),
        f"CBPE, {len(aucs)} label simulations",
        confidence,
    )


def estimate_log_loss(
    p: Any, confidence: float = 0.95, simulations: int = 400, seed: int = 0
) -> Interval | None:
    """The log loss the (unknown) labels of these rows should give, if the scores are calibrated:
    the mean binary entropy of the scores, with a simulated interval. None without scored rows."""
    _check_confidence(confidence)
    scores = _scores(p)
    if len(scores) == 0:
        return None
    clipped = np.clip(scores, EPS, 1 - EPS)
    log_p, log_q = np.log(clipped), np.log1p(-clipped)
    entropy = -(clipped * log_p + (1 - clipped) * log_q)
    # Per simulation: mean(-(y log p + (1 - y) log(1 - p)))
    #               = mean(-log(1 - p)) - y . (log p - log(1 - p)) / n
    base, weights = -log_q.mean(), (log_p - log_q) / len(scores)
    losses = _simulate(scores, simulations, seed, lambda labels: base - labels @ weights)
    low, high = _central_quantiles(losses, confidence)
    return Interval(
        "log_loss",
        float(entropy.mean()),
        low,
        high,
        len(scores),
        f"CBPE, {simulations} label simulations",
        confidence,
    )


# --- observed metrics (labelled rows) -------------------------------------------------------


def observed_roc_auc(y: Any, p: Any, confidence: float = 0.95) -> Interval | None:
    """ROC AUC of the labelled rows with a DeLong normal interval, clipped to [0, 1].

    None unless each class has at least 2 rows (DeLong's variance needs two of each).
    """
    _check_confidence(confidence)
    labels, scores = _labelled(y, p)
    positives, negatives = scores[labels == 1], scores[labels == 0]
    if len(positives) < 2 or len(negatives) < 2:
        return None
    auc, variance = _delong(positives, negatives)
    half = _z(confidence) * math.sqrt(variance)
    return Interval(
        "roc_auc",
        auc,
        max(0.0, auc - half),
        min(1.0, auc + half),
        len(scores),
        "DeLong",
        confidence,
    )


def observed_log_loss(y: Any, p: Any, confidence: float = 0.95) -> Interval | None:
    """Mean per-row log loss (scores clipped to ``[EPS, 1 - EPS]``) with a CLT interval.
    None with fewer than 2 labelled rows."""
    _check_confidence(confidence)
    labels, scores = _labelled(y, p)
    clipped = np.clip(scores, EPS, 1 - EPS)
    losses = -(labels * np.log(clipped) + (1 - labels) * np.log1p(-clipped))
    return _mean_interval("log_loss", losses, confidence)


def calibration_gap(y: Any, p: Any, confidence: float = 0.95) -> Interval | None:
    """Signed ``mean(p - y)`` over the labelled rows (positive: the model over-predicts lateness)
    with a CLT interval. None with fewer than 2 labelled rows."""
    _check_confidence(confidence)
    labels, scores = _labelled(y, p)
    return _mean_interval("calibration_gap", scores - labels, confidence)


def reconcile(estimated: Interval, observed: Interval) -> dict[str, Any]:
    """Compare an estimate with what the labels showed: the error (estimated minus observed) and
    whether the estimate's interval covered the observed value."""
    if estimated.metric != observed.metric:
        raise ValueError(f"cannot reconcile {estimated.metric} with {observed.metric}")
    return {
        "metric": estimated.metric,
        "estimated": estimated.to_dict(),
        "observed": observed.to_dict(),
        "error": estimated.estimate - observed.estimate,
        "covered": estimated.low <= observed.estimate <= estimated.high,
    }


# --- helpers ----------------------------------------------------------------------------------


def _check_confidence(confidence: float) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")


def _z(confidence: float) -> float:
    """The two-sided normal quantile: 1.96 for 0.95."""
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def _vector(values: Any, name: str) -> FloatArray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {array.shape}")
    return array


def _check_probabilities(scores: FloatArray) -> None:
    if np.any((scores < 0) | (scores > 1)):
        raise ValueError("scores must be probabilities in [0, 1]")


def _scores(p: Any) -> FloatArray:
    """The finite scores of ``p``."""
    scores = _vector(p, "p")
    scores = scores[np.isfinite(scores)]
    _check_probabilities(scores)
    return scores


def _labelled(y: Any, p: Any) -> tuple[FloatArray, FloatArray]:
    """Labels and scores of the rows where both are finite."""
    labels, scores = _vector(y, "y"), _vector(p, "p")
    if labels.shape != scores.shape:
        raise ValueError(f"y and p differ in length: {len(labels)} != {len(scores)}")
    known = np.isfinite(labels) & np.isfinite(scores)
    labels, scores = labels[known], scores[known]
    if np.any((labels != 0) & (labels != 1)):
        raise ValueError("labels must be 0 or 1")
    _check_probabilities(scores)
    return labels, scores


def _label_chunks(scores: FloatArray, simulations: int, seed: int) -> Iterator[FloatArray]:
    """``simulations`` label vectors ``y ~ Bernoulli(scores)``, as (chunk, rows) 0/1 matrices.

    The draws do not depend on the chunk size (a Generator fills arrays in order)."""
    if simulations < 1:
        raise ValueError(f"simulations must be positive, got {simulations}")
    rng = np.random.default_rng(seed)
    per_chunk = max(1, _CHUNK_CELLS // len(scores))
    for start in range(0, simulations, per_chunk):
        size = min(per_chunk, simulations - start)
        yield (rng.random((size, len(scores))) < scores).astype(np.float64)


def _simulate(
    scores: FloatArray,
    simulations: int,
    seed: int,
    metric: Callable[[FloatArray], FloatArray],
) -> FloatArray:
    """``metric`` of each simulated label vector (``metric`` maps a chunk to one value a row)."""
    return np.concatenate([metric(chunk) for chunk in _label_chunks(scores, simulations, seed)])


def _rank_sum_auc(labels: FloatArray, ranks: FloatArray) -> FloatArray:
    """AUC of each label vector (a row of ``labels``) by the rank-sum formula; NaN where it holds
    one class only."""
    positives = labels.sum(axis=1)
    negatives = labels.shape[1] - positives
    rank_sums = labels @ ranks
    with np.errstate(divide="ignore", invalid="ignore"):
        auc = (rank_sums - positives * (positives + 1) / 2) / (positives * negatives)
    return np.where((positives > 0) & (negatives > 0), auc, np.nan)


def _central_quantiles(values: FloatArray, confidence: float) -> tuple[float, float]:
    tail = (1 - confidence) / 2
    low, high = np.quantile(values, [tail, 1 - tail])
    return float(low), float(high)


def _mean_interval(metric: str, values: FloatArray, confidence: float) -> Interval | None:
    """The mean of per-row ``values`` with a normal (CLT) interval; None under 2 rows."""
    if len(values) < 2:
        return None
    mean = float(values.mean())
    half = _z(confidence) * float(values.std(ddof=1)) / math.sqrt(len(values))
    return Interval(metric, mean, mean - half, mean + half, len(values), "CLT", confidence)
