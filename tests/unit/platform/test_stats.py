"""driftloop.stats: the paired ROC AUC gain (DeLong) and the sign-test bound on a median that
the gate's serving-cost rule decides on, checked for the error rates they claim."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from driftloop.stats import delong, median_lower_bound, paired_auc_gain


def test_median_bound_picks_the_order_statistic_the_binomial_allows() -> None:
    assert median_lower_bound([1.0, 2.0, 3.0, 4.0], 0.05) is None  # 0.5**4 = 0.0625 > 0.05
    five = median_lower_bound([5.0, 1.0, 4.0, 2.0, 3.0], 0.05)
    assert five is not None
    assert (five.lower, five.order, five.median) == (1.0, 1, 3.0)
    assert five.achieved_alpha == pytest.approx(1 / 32)
    nine = median_lower_bound(list(range(9)), 0.05)
    assert nine is not None
    assert (nine.order, nine.lower) == (2, 1.0)  # P(Bin(9, .5) <= 1) = 10/512 <= 0.05
    assert nine.achieved_alpha == pytest.approx(10 / 512)
    with pytest.raises(ValueError, match="finite"):
        median_lower_bound([1.0, math.nan], 0.05)


def test_median_bound_is_above_the_true_median_at_most_alpha_of_the_time() -> None:
    rng = np.random.default_rng(7)
    samples = rng.lognormal(mean=0.0, sigma=0.3, size=(4000, 9))  # true median exp(0) = 1
    misses = sum(b.lower > 1.0 for b in map(lambda s: median_lower_bound(s, 0.05), samples) if b)
    assert misses / len(samples) <= 0.05  # the achieved rate is 10/512 ~ 0.02


def test_paired_gain_of_a_model_against_itself_is_zero_with_no_spread() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 500)
    p = rng.random(500)
    gain = paired_auc_gain(y, p, p)
    assert gain is not None
    assert gain.estimate == 0.0
    assert gain.standard_error == pytest.approx(0.0, abs=1e-12)
    assert paired_auc_gain([1, 0, 0], [0.9, 0.1, 0.2], [0.8, 0.1, 0.3]) is None  # 1 positive


def test_paired_gain_matches_sklearn_and_its_bound_holds_its_error_rate() -> None:
    rng = np.random.default_rng(3)
    runs, false_gains = 400, 0
    for _ in range(runs):
        y = rng.integers(0, 2, 400)
        signal = y + rng.normal(0, 1.2, 400)
        a = signal + rng.normal(0, 0.5, 400)  # two models of equal skill, correlated scores
        b = signal + rng.normal(0, 0.5, 400)
        gain = paired_auc_gain(y, a, b, confidence=0.95)
        assert gain is not None
        assert gain.estimate == pytest.approx(roc_auc_score(y, a) - roc_auc_score(y, b))
        false_gains += gain.lower > 0
    assert false_gains / runs <= 0.05 + 2 * math.sqrt(0.05 * 0.95 / runs)  # binomial slack


def test_paired_variance_is_smaller_than_the_unpaired_sum_for_correlated_models() -> None:
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 2000)
    signal = y + rng.normal(0, 1.0, 2000)
    a, b = signal + rng.normal(0, 0.3, 2000), signal + rng.normal(0, 0.3, 2000)
    gain = paired_auc_gain(y, a, b)
    assert gain is not None
    _, var_a = delong(a[y == 1], a[y == 0])
    _, var_b = delong(b[y == 1], b[y == 0])
    assert gain.standard_error**2 < (var_a + var_b) / 2
