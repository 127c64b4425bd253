"""Performance estimates and intervals, checked against simulation (seeded, numpy only).

Figures measured with these seeds (the asserts leave margin):

- CBPE AUC, Beta(2, 5) calibrated scores, 1,000 rows, 200 repetitions: mean absolute error
  against the realised AUC 0.0139 (bias 0.0006), 95 % interval coverage 0.945.
- Covariate shift (Beta(5, 2) and Beta(1, 1) scores, still calibrated): MAE 0.0133 and 0.0095,
  coverage 0.950 and 0.935.
- Concept shift (labels from sigmoid(logit(p) + 1)), Beta(1, 1) scores, 2,000 rows, 100
  repetitions: the AUC estimate's bias is -0.0044 against -0.0002 without the shift (MAE 0.0073
  against 0.0062; a constant logit shift keeps the ranking, so the AUC moves little), while the
  log loss estimate misses by 0.042 and the calibration gap is -0.149 [-0.167, -0.132].
- CBPE log loss, Beta(2, 5), 1,000 rows, 200 repetitions: MAE 0.0116, coverage 0.935.
- 95 % intervals on labelled rows: DeLong coverage of the true binormal AUC 0.934 for both
  100/100 and 40/400 rows (1,000 repetitions; 0.945-0.948 over 2,000 with another seed);
  log loss 0.950, calibration gap 0.954 (calibrated) and 0.936 (over-predicting).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable

import numpy as np
import pytest

from driftloop.monitoring import performance
from driftloop.monitoring.performance import (
    Interval,
    calibration_gap,
    estimate_log_loss,
    estimate_roc_auc,
    observed_log_loss,
    observed_roc_auc,
    reconcile,
)


def reference_auc(y: np.ndarray, p: np.ndarray) -> float:
    """AUC counted directly: for each positive, the negatives below it (ties count 1/2)."""
    negatives = np.sort(p[y == 0])
    positives = p[y == 1]
    below = np.searchsorted(negatives, positives, side="left")
    tied = np.searchsorted(negatives, positives, side="right") - below
    return float((below + tied / 2).sum() / (len(positives) * len(negatives)))


def brute_force_auc(y: np.ndarray, p: np.ndarray) -> float:
    pos, neg = p[y == 1][:, None], p[y == 0][None, :]
    return float(((pos > neg) + 0.5 * (pos == neg)).mean())


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


def logit(p: np.ndarray) -> np.ndarray:
    return np.log(p / (1 - p))


def cbpe_auc_errors(
    draw_scores: Callable[[np.random.Generator], np.ndarray],
    repetitions: int,
    logit_shift: float = 0.0,
    simulations: int = 200,
    seed: int = 0,
) -> tuple[np.ndarray, float]:
    """CBPE AUC minus realised AUC per repetition, and the interval's coverage of the latter.

    Labels are drawn from sigmoid(logit(p) + logit_shift): 0 means calibrated scores."""
    rng = np.random.default_rng(seed)
    errors, covered = [], 0
    for i in range(repetitions):
        p = draw_scores(rng)
        y = (rng.random(len(p)) < sigmoid(logit(p) + logit_shift)).astype(float)
        est = estimate_roc_auc(p, simulations=simulations, seed=i)
        assert est is not None
        realised = reference_auc(y, p)
        errors.append(est.estimate - realised)
        covered += est.low <= realised <= est.high
    return np.array(errors), covered / repetitions


# --- CBPE ---------------------------------------------------------------------------------------


def test_cbpe_auc_tracks_realised_auc_of_calibrated_scores() -> None:
    errors, coverage = cbpe_auc_errors(lambda rng: rng.beta(2, 5, 1000), repetitions=200)
    assert np.abs(errors).mean() < 0.02  # measured 0.0139
    assert abs(errors.mean()) < 0.004  # no bias (measured 0.0006)
    assert 0.90 <= coverage <= 0.99  # measured 0.945


@pytest.mark.parametrize(("a", "b"), [(5, 2), (1, 1)])
def test_cbpe_auc_survives_covariate_shift(a: float, b: float) -> None:
    """Scores distributed unlike the Beta(2, 5) above, but still calibrated: still tracked."""
    errors, coverage = cbpe_auc_errors(lambda rng: rng.beta(a, b, 1000), repetitions=200, seed=1)
    assert np.abs(errors).mean() < 0.02  # measured 0.0133 (5, 2), 0.0095 (1, 1)
    assert 0.90 <= coverage <= 0.99  # measured 0.950, 0.935


def test_cbpe_cannot_see_concept_shift() -> None:
    """The limitation: when P(y | score) changes, the estimate follows the scores and misses.

    A constant logit shift keeps the ranking, so the AUC misses by little (but systematically);
    the log loss misses by far; only labelled rows (the calibration gap) reveal the shift."""

    def draw(rng: np.random.Generator) -> np.ndarray:
        return rng.beta(1, 1, 2000)

    # The same seed draws the same scores and uniforms: the two runs differ only by the shift.
    stable, _ = cbpe_auc_errors(draw, repetitions=100, simulations=100, seed=2)
    shifted, _ = cbpe_auc_errors(draw, repetitions=100, logit_shift=1.0, simulations=100, seed=2)
    assert abs(stable.mean()) < 0.0015  # measured -0.0002
    assert shifted.mean() < -0.0025  # measured -0.0044: the realised AUC rose, unseen
    assert np.abs(shifted).mean() > np.abs(stable).mean()  # measured 0.0073 > 0.0062

    rng = np.random.default_rng(3)
    p = draw(rng)
    y = (rng.random(len(p)) < sigmoid(logit(p) + 1.0)).astype(float)
    est, obs = estimate_log_loss(p), observed_log_loss(y, p)
    assert est is not None
    assert obs is not None
    assert obs.estimate - est.estimate > 0.025  # measured 0.042
    assert not reconcile(est, obs)["covered"]
    gap = calibration_gap(y, p)
    assert gap is not None
    assert gap.high < -0.08  # measured -0.132: the labels show the model under-predicts lateness


def test_cbpe_auc_conditions_on_both_classes_and_handles_ties() -> None:
    # Two rows: only the label vectors with one late flight count. Of those, (0, 1) has
    # probability 0.9 * 0.9 and AUC 1; (1, 0) has 0.1 * 0.1 and AUC 0.
    est = estimate_roc_auc([0.1, 0.9], simulations=20_000)
    assert est is not None
    assert est.estimate == pytest.approx(0.81 / 0.82, abs=0.004)
    tied = estimate_roc_auc([0.5, 0.5, 0.5], simulations=200)
    assert tied is not None
    assert (tied.estimate, tied.low, tied.high) == (0.5, 0.5, 0.5)


def test_cbpe_log_loss_interval_covers_realised_log_loss() -> None:
    rng = np.random.default_rng(4)
    errors, covered = [], 0
    for i in range(200):
        p = rng.beta(2, 5, 1000)
        y = (rng.random(len(p)) < p).astype(float)
        est, obs = estimate_log_loss(p, simulations=200, seed=i), observed_log_loss(y, p)
        assert est is not None
        assert obs is not None
        errors.append(est.estimate - obs.estimate)
        covered += reconcile(est, obs)["covered"]
    assert np.abs(errors).mean() < 0.016  # measured 0.0116
    assert 0.90 <= covered / 200 <= 0.99  # measured 0.935


def test_cbpe_is_reproducible_and_independent_of_chunking(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    p = np.random.default_rng(5).beta(2, 5, 3000)
    whole = estimate_roc_auc(p, simulations=50, seed=7)
    assert whole == estimate_roc_auc(p, simulations=50, seed=7)
    assert whole != estimate_roc_auc(p, simulations=50, seed=8)
    monkeypatch.setattr(performance, "_CHUNK_CELLS", 4000)  # one simulation a chunk
    chunked = estimate_roc_auc(p, simulations=50, seed=7)
    assert whole is not None
    assert chunked is not None
    assert chunked.estimate == pytest.approx(whole.estimate, abs=1e-12)
    assert (chunked.low, chunked.high) == pytest.approx((whole.low, whole.high), abs=1e-12)


def test_confidence_sets_the_width() -> None:
    p = np.random.default_rng(6).beta(2, 5, 1000)
    narrow, wide = estimate_roc_auc(p, confidence=0.8), estimate_roc_auc(p, confidence=0.99)
    assert narrow is not None
    assert wide is not None
    assert wide.low < narrow.low < narrow.estimate < narrow.high < wide.high
    assert (narrow.confidence, narrow.metric, narrow.rows) == (0.8, "roc_auc", 1000)
    assert narrow.method == "CBPE, 400 label simulations"


# --- observed metrics ---------------------------------------------------------------------------


def test_delong_matches_pairwise_counts_with_ties() -> None:
    rng = np.random.default_rng(7)
    p = rng.integers(0, 6, 60) / 5  # six distinct values: many ties, within and across classes
    y = (rng.random(60) < 0.3 + 0.4 * p).astype(float)
    obs = observed_roc_auc(y, p)
    assert obs is not None
    assert obs.estimate == pytest.approx(brute_force_auc(y, p), abs=1e-12)
    # DeLong's variance from the pairwise kernel: the variance of each positive's share of
    # negatives below it over the positives, plus the same for the negatives.
    pos, neg = p[y == 1][:, None], p[y == 0][None, :]
    kernel = (pos > neg) + 0.5 * (pos == neg)
    variance = kernel.mean(1).var(ddof=1) / pos.size + kernel.mean(0).var(ddof=1) / neg.size
    half = 1.959964 * math.sqrt(variance)
    assert (obs.low, obs.high) == pytest.approx((obs.estimate - half, obs.estimate + half))
    assert (obs.rows, obs.method) == (60, "DeLong")


@pytest.mark.parametrize(("positives", "negatives"), [(100, 100), (40, 400)])
def test_delong_interval_covers_the_true_auc(positives: int, negatives: int) -> None:
    """Binormal scores, N(d, 1) against N(0, 1): the true AUC is Phi(d / sqrt(2))."""
    d = 1.0
    truth = 0.5 * (1 + math.erf(d / 2))  # Phi(d / sqrt 2)
    rng = np.random.default_rng(8)
    y = np.r_[np.ones(positives), np.zeros(negatives)]
    covered = 0
    for _ in range(1000):
        scores = np.r_[rng.normal(d, 1, positives), rng.normal(0, 1, negatives)]
        obs = observed_roc_auc(y, sigmoid(scores))
        assert obs is not None
        covered += obs.low <= truth <= obs.high
    assert 0.92 <= covered / 1000 <= 0.975  # measured 0.934 for both


def test_observed_log_loss_interval_covers_the_expected_log_loss() -> None:
    rng = np.random.default_rng(9)
    big = rng.beta(2, 5, 2_000_000)
    truth = float(-(big * np.log(big) + (1 - big) * np.log1p(-big)).mean())
    covered = 0
    for _ in range(500):
        p = rng.beta(2, 5, 400)
        y = (rng.random(400) < p).astype(float)
        obs = observed_log_loss(y, p)
        assert obs is not None
        covered += obs.low <= truth <= obs.high
    assert 0.92 <= covered / 500 <= 0.975  # measured 0.950


@pytest.mark.parametrize("late_share", [1.0, 0.8])
def test_calibration_gap_interval_covers_the_true_gap(late_share: float) -> None:
    """Labels from late_share * p: the true gap mean(p - y) is (1 - late_share) * E[p], and
    E[p] = 2/7 under Beta(2, 5)."""
    truth = (1 - late_share) * 2 / 7
    rng = np.random.default_rng(10)
    covered = 0
    for _ in range(500):
        p = rng.beta(2, 5, 400)
        y = (rng.random(400) < late_share * p).astype(float)
        gap = calibration_gap(y, p)
        assert gap is not None
        covered += gap.low <= truth <= gap.high
    assert 0.92 <= covered / 500 <= 0.975  # measured 0.954 and 0.936


def test_a_score_of_zero_or_one_costs_a_bounded_log_loss() -> None:
    obs = observed_log_loss([1, 0], [0.0, 1.0])
    assert obs is not None
    assert obs.estimate == pytest.approx(-math.log(performance.EPS))


# --- inputs -------------------------------------------------------------------------------------


def test_rows_with_a_missing_label_or_score_are_ignored() -> None:
    rng = np.random.default_rng(11)
    p = rng.beta(2, 5, 300)
    y = (rng.random(300) < p).astype(float)
    y_gaps, p_gaps = y.copy(), p.copy()
    y_gaps[::7], p_gaps[3::11] = np.nan, np.nan
    keep = np.isfinite(y_gaps) & np.isfinite(p_gaps)
    for metric in (observed_roc_auc, observed_log_loss, calibration_gap):
        assert metric(y_gaps, p_gaps) == metric(y[keep], p[keep])
    assert estimate_roc_auc(p_gaps) == estimate_roc_auc(p[np.isfinite(p_gaps)])
    assert estimate_log_loss(p_gaps) == estimate_log_loss(p[np.isfinite(p_gaps)])


@pytest.mark.parametrize(
    "scores", [[], [0.4], [np.nan, 0.4, np.nan], [0.0] * 50, [1.0] * 50, [1e-6] * 50]
)
def test_cbpe_auc_is_none_when_undefined(scores: list[float]) -> None:
    assert estimate_roc_auc(scores) is None


def test_cbpe_log_loss_is_none_without_rows() -> None:
    assert estimate_log_loss([np.nan]) is None
    assert estimate_log_loss([0.3]) is not None


@pytest.mark.parametrize(
    ("y", "p"),
    [
        ([], []),
        ([1, 1, 1], [0.2, 0.5, 0.7]),  # one class
        ([1, 0, 0, 0], [0.2, 0.5, 0.7, 0.1]),  # a single positive: no DeLong variance
        ([1, 0, np.nan, 0], [0.2, 0.5, 0.7, np.nan]),
    ],
)
def test_observed_auc_is_none_when_undefined(y: list[float], p: list[float]) -> None:
    assert observed_roc_auc(y, p) is None


@pytest.mark.parametrize("metric", [observed_log_loss, calibration_gap])
def test_mean_metrics_need_two_rows(metric: Callable[..., Interval | None]) -> None:
    assert metric([1], [0.3]) is None
    assert metric([1, np.nan], [0.3, 0.4]) is None
    assert metric([1, 0], [0.3, 0.4]) is not None


@pytest.mark.parametrize(
    "call",
    [
        lambda: estimate_roc_auc([0.2, 1.5]),
        lambda: estimate_roc_auc([0.2, 0.5], confidence=1.0),
        lambda: estimate_roc_auc([0.2, 0.5], simulations=0),
        lambda: estimate_log_loss([[0.2, 0.5]]),
        lambda: observed_roc_auc([1, 0], [0.2]),
        lambda: observed_roc_auc([1, 2], [0.2, 0.5]),
        lambda: calibration_gap([1, 0], [0.2, -0.1]),
    ],
)
def test_bad_inputs_are_refused(call: Callable[[], object]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each case words its own message
        call()


# --- output -------------------------------------------------------------------------------------


def test_interval_text_and_dict() -> None:
    interval = Interval("roc_auc", 0.71249, 0.69, 0.7333, 500, "DeLong", 0.95)
    assert interval.text() == "0.712 [0.690, 0.733]"
    assert interval.text(2) == "0.71 [0.69, 0.73]"
    assert json.loads(json.dumps(interval.to_dict())) == {
        "metric": "roc_auc",
        "estimate": 0.71249,
        "low": 0.69,
        "high": 0.7333,
        "rows": 500,
        "method": "DeLong",
        "confidence": 0.95,
    }


def test_intervals_from_arrays_are_plain_json() -> None:
    p = np.random.default_rng(12).beta(2, 5, 200)
    y = (p > 0.3).astype(float)
    for interval in (estimate_roc_auc(p), estimate_log_loss(p), observed_roc_auc(y, p)):
        assert interval is not None
        json.dumps(interval.to_dict())
        assert all(type(v) in (str, int, float) for v in interval.to_dict().values())


def test_reconcile() -> None:
    estimated = Interval("roc_auc", 0.72, 0.70, 0.74, 900, "CBPE, 400 label simulations", 0.95)
    observed = Interval("roc_auc", 0.69, 0.66, 0.72, 300, "DeLong", 0.95)
    result = reconcile(estimated, observed)
    assert result["metric"] == "roc_auc"
    assert result["error"] == pytest.approx(0.03)
    assert result["covered"] is False
    assert result["estimated"] == estimated.to_dict()
    assert result["observed"] == observed.to_dict()
    inside = Interval("roc_auc", 0.71, 0.68, 0.74, 300, "DeLong", 0.95)
    assert reconcile(estimated, inside)["covered"] is True
    with pytest.raises(ValueError, match="log_loss"):
        reconcile(estimated, Interval("log_loss", 0.5, 0.4, 0.6, 300, "CLT", 0.95))
