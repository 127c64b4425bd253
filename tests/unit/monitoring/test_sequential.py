"""Always-valid confidence sequences and the sample-ratio check (driftloop.sequential): the
error rate holds under continuous peeking, where a fixed-horizon interval's does not."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

from driftloop.sequential import (
    MeanStats,
    always_valid_p,
    difference_bounds,
    half_width,
    mean_bounds,
    sample_ratio_mismatch,
)

ALPHA = 0.05


def _peeking_error_rates(sims: int = 400, n: int = 3000, every: int = 25) -> tuple[float, float]:
    """A/A streams of two arms (no difference), looked at every ``every`` observations per arm:
    the share of streams where some look excluded 0, for the confidence sequence and for a
    fixed-horizon 95 % interval."""
    rng = np.random.default_rng(7)
    z = NormalDist().inv_cdf(1 - ALPHA / 2)
    seq_hits = fixed_hits = 0
    looks = np.arange(every, n + 1, every)
    for _ in range(sims):
        a = rng.normal(0.5, 0.6, n)  # log-loss-like spread
        b = rng.normal(0.5, 0.6, n)
        ca, cb = np.cumsum(a), np.cumsum(b)
        qa, qb = np.cumsum(a * a), np.cumsum(b * b)
        seq = fixed = False
        for k in looks:
            sa = MeanStats(int(k), float(ca[k - 1]), float(qa[k - 1]))
            sb = MeanStats(int(k), float(cb[k - 1]), float(qb[k - 1]))
            bounds = difference_bounds(sa, sb, ALPHA, tau=0.05)
            seq |= bounds.low > 0 or bounds.high < 0
            se = math.sqrt(sa.variance_of_mean + sb.variance_of_mean)
            fixed |= abs(bounds.estimate) > z * se
        seq_hits += seq
        fixed_hits += fixed
    return seq_hits / sims, fixed_hits / sims


def test_type_one_error_under_continuous_peeking_stays_below_alpha() -> None:
    sequential, fixed = _peeking_error_rates()
    assert sequential <= ALPHA  # measured: well below alpha (the mixture is conservative)
    # The same looks with a fixed-horizon interval reject several times more often.
    assert fixed > 2 * ALPHA


def test_interval_shrinks_with_evidence_and_tau_sets_where_it_is_tightest() -> None:
    small, large = MeanStats.of(np.ones(10) * 0.5), None
    rng = np.random.default_rng(0)
    small = MeanStats.of(rng.normal(0, 1, 100))
    large = MeanStats.of(rng.normal(0, 1, 10_000))
    assert mean_bounds(large, ALPHA, 0.1).half_width < mean_bounds(small, ALPHA, 0.1).half_width
    v = 1e-4  # variance of an estimate from ~10,000 unit-variance rows
    assert half_width(v, ALPHA, tau=0.01) < half_width(v, ALPHA, tau=1.0)
    assert half_width(math.inf, ALPHA, 0.1) == math.inf


def test_always_valid_p_is_below_alpha_exactly_when_the_interval_excludes_the_null() -> None:
    rng = np.random.default_rng(3)
    for shift in (0.0, 0.02, 0.05, 0.2):
        x = MeanStats.of(rng.normal(shift, 1.0, 2000))
        b = mean_bounds(x, ALPHA, 0.05)
        excludes = b.low > 0 or b.high < 0
        assert (always_valid_p(b.estimate, b.variance, 0.05) < ALPHA) == excludes


def test_no_errors_in_a_few_requests_is_not_certainty() -> None:
    few = MeanStats.of(np.zeros(5), binary=True)
    many = MeanStats.of(np.zeros(5000), binary=True)
    assert few.variance > 0.1  # (0 + 1) / (5 + 2) = 1/7
    assert mean_bounds(few, ALPHA, 0.01).half_width > 0.1
    assert mean_bounds(many, ALPHA, 0.01).half_width < 0.01


def test_sample_ratio_mismatch_flags_a_broken_split_and_spares_a_correct_one() -> None:
    broken = sample_ratio_mismatch(700, 5000, 0.10, alpha=0.001)  # 14 % at weight 10
    assert broken.mismatch
    assert broken.chi_square > 80
    assert "700 of 5000 requests (14.0%)" in broken.text()
    fine = sample_ratio_mismatch(509, 5000, 0.10, alpha=0.001)
    assert not fine.mismatch
    assert sample_ratio_mismatch(30, 60, 0.10, alpha=0.001).mismatch is False  # < min_total


def test_correct_splits_checked_at_every_look_rarely_halt() -> None:
    rng = np.random.default_rng(11)
    halts = 0
    runs = 2000
    for _ in range(runs):
        treated = np.cumsum(rng.random(5000) < 0.10)
        halts += any(
            sample_ratio_mismatch(int(treated[n - 1]), n, 0.10, 0.001).mismatch
            for n in range(100, 5001, 100)
        )
    assert halts / runs <= 0.002  # always-valid at 0.001 (benchmarks/decisions.py: more runs)


def test_mean_stats_round_trip_and_reject_nan() -> None:
    s = MeanStats.of([1.0, 2.0, float("nan"), 3.0])
    assert (s.n, s.mean) == (3, 2.0)
    assert MeanStats.from_dict(s.to_dict()) == s
