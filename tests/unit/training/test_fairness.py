"""Error-rate gaps between slices (driftloop.training.fairness): Wilson intervals, the worst gap
as far as the intervals show it, small slices left out, and the gate refusing a challenger that
widens the gap beyond the tolerance (paired bootstrap, its stated error rate checked by
simulation) with the numbers in its reason."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pandas as pd
import pytest

from driftloop.settings import TrainingSettings
from driftloop.training.evaluation import decide_gate
from driftloop.training.fairness import (
    error_rates,
    judge_fairness,
    markdown,
    wilson_interval,
)


def test_wilson_interval_matches_the_textbook_values() -> None:
    lo, hi = wilson_interval(5, 10, 0.95)
    assert (lo, hi) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    lo, hi = wilson_interval(0, 10, 0.95)
    assert lo == pytest.approx(0.0, abs=1e-12)
    assert hi == pytest.approx(0.2775, abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    # more confidence, wider; more rows, narrower
    assert wilson_interval(20, 100, 0.99)[0] < wilson_interval(20, 100, 0.95)[0]
    assert wilson_interval(200, 1000)[1] - wilson_interval(200, 1000)[0] < 0.06


def _frame(
    groups: dict[str, tuple[int, int]], column: str = "carrier"
) -> tuple[pd.DataFrame, np.ndarray]:
    """Rows per slice: (rows, wrong); every row is late (label 1) and predicted late (p=0.9)
    unless it is one of the slice's wrong ones (p=0.1). Origin is one value throughout."""
    values, labels, probs = [], [], []
    for value, (rows, wrong) in groups.items():
        values += [value] * rows
        labels += [1] * rows
        probs += [0.1] * wrong + [0.9] * (rows - wrong)
    frame = pd.DataFrame({column: values, "origin": "EWR", "is_late": labels})
    return frame, np.asarray(probs)


def test_worst_gap_is_the_lower_bound_between_the_surely_worst_and_surely_best_slice() -> None:
    frame, p = _frame({"AA": (1000, 100), "UA": (1000, 400), "XX": (5, 5)})
    report = error_rates(frame, p, threshold=0.5, min_rows=50)
    gap = report.gaps["carrier"]
    assert (gap.worst, gap.best) == ("UA", "AA")
    ua = next(s for s in report.slices if s.value == "UA")
    aa = next(s for s in report.slices if s.value == "AA")
    assert ua.rate == 0.4
    assert aa.rate == 0.1
    assert gap.gap == pytest.approx(ua.lower - aa.upper)
    assert 0.2 < gap.gap < 0.3  # below the point gap of 0.3: only what the intervals show
    assert gap.point_gap == pytest.approx(0.3)
    # the 5-row slice with every row wrong is left out, and counted as too small
    assert (gap.judged, gap.too_small) == (2, 1)
    assert report.overall_error_rate == pytest.approx(505 / 2005)
    assert report.gaps["origin"].gap == 0.0  # one origin: nothing to compare
    metrics = report.metrics("holdout_model")
    assert metrics["holdout_model_fairness_gap_carrier"] == pytest.approx(gap.gap)


def test_small_slices_with_overlapping_intervals_show_no_gap() -> None:
    # 2/20 vs 6/20 wrong: a point gap of 0.2, but the intervals overlap
    frame, p = _frame({"AA": (20, 2), "UA": (20, 6)})
    report = error_rates(frame, p, threshold=0.5, min_rows=10)
    assert report.gaps["carrier"].gap == 0.0
    assert report.gaps["carrier"].point_gap == pytest.approx(0.2)


def test_error_rate_is_taken_at_the_given_threshold() -> None:
    frame = pd.DataFrame({"carrier": ["AA"] * 4, "origin": "JFK", "is_late": [1, 1, 0, 0]})
    p = np.array([0.9, 0.4, 0.3, 0.1])
    assert error_rates(frame, p, 0.5, min_rows=1).overall_error_rate == 0.25
    assert error_rates(frame, p, 0.35, min_rows=1).overall_error_rate == 0.0
    assert error_rates(frame, p, 0.05, min_rows=1).overall_error_rate == 0.5


def _paired(
    model: dict[str, tuple[int, int]], champion: dict[str, tuple[int, int]]
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """The same rows scored by two models: (frame, P(late) of the model, of the champion)."""
    frame, p_model = _frame(model)
    champ_frame, p_champion = _frame(champion)
    assert frame["carrier"].tolist() == champ_frame["carrier"].tolist()
    return frame, p_model, p_champion


def test_the_rule_refuses_a_widened_gap_with_the_numbers_and_allows_within_tolerance() -> None:
    frame, p_model, p_champ = _paired(
        {"AA": (1000, 100), "UA": (1000, 450)}, {"AA": (1000, 150), "UA": (1000, 180)}
    )
    verdict = judge_fairness(frame, p_model, 0.5, p_champ, 0.5, 0.02, "3", min_rows=50)
    assert not verdict.allowed
    assert set(verdict.widened) == {"carrier"}
    change = verdict.changes["carrier"]
    assert change.model_gap == pytest.approx(0.35)
    assert change.champion_gap == pytest.approx(0.03)
    assert change.estimate == pytest.approx(0.32)
    assert 0.02 < change.lower < 0.32 < change.upper  # an interval around the estimate
    assert (change.worst, change.best) == ("UA", "AA")
    assert verdict.reason.startswith("fairness: carrier gap 0.3500 (UA vs AA) vs champion's 0.0300")
    assert f"[{change.lower:+.4f}, {change.upper:+.4f}] > tolerance 0.02" in verdict.reason
    assert "champion v3" in verdict.reason
    assert "probability <= 5%" in verdict.reason  # the stated error rate
    metrics = verdict.metrics()
    assert metrics["holdout_fairness_gap_change_carrier"] == pytest.approx(0.32)
    assert metrics["holdout_fairness_gap_change_carrier_lower"] == change.lower
    # the same predictions: no widening at all; a loose tolerance lets the widening through
    same = judge_fairness(frame, p_model, 0.5, p_model, 0.5, 0.0, "3", min_rows=50)
    assert same.allowed
    assert (same.changes["carrier"].lower, same.changes["carrier"].upper) == (0.0, 0.0)
    assert judge_fairness(frame, p_model, 0.5, p_champ, 0.5, 0.5, "3", min_rows=50).allowed
    # each model is cut at its own threshold: the champion's at 0.05 says late for every row
    assert judge_fairness(frame, p_model, 0.5, p_champ, 0.05, 0.02, "3", min_rows=50).changes[
        "carrier"
    ].champion_gap == pytest.approx(0.0)


def test_small_slices_are_not_judged_by_the_rule() -> None:
    frame, p_model, p_champ = _paired(
        {"AA": (1000, 100), "UA": (1000, 120), "XX": (30, 30)},
        {"AA": (1000, 100), "UA": (1000, 120), "XX": (30, 0)},
    )
    verdict = judge_fairness(frame, p_model, 0.5, p_champ, 0.5, 0.02, "3", min_rows=50)
    assert verdict.allowed  # the 30-row slice the model gets all wrong is left out
    assert verdict.changes["carrier"].judged == 2
    assert not judge_fairness(frame, p_model, 0.5, p_champ, 0.5, 0.02, "3", min_rows=10).allowed


def _simulated(rng: np.random.Generator, rates: dict[str, float], rows: int) -> np.ndarray:
    """P(late) for ``_frame``'s layout (every row late) with errors drawn at ``rates``."""
    return np.concatenate([np.where(rng.random(rows) < r, 0.1, 0.9) for r in rates.values()])


def test_the_stated_error_rate_holds_at_the_tolerance_and_a_planted_gap_is_always_caught() -> None:
    """Simulated holdouts: a challenger whose true gap is exactly the tolerance wider than the
    champion's is refused at most about as often as stated (one-sided 5% / 2 columns), and a
    planted gap well beyond it is refused every time."""
    rows, tolerance, trials = 1000, 0.02, 200
    frame, _ = _frame({"AA": (rows, 0), "UA": (rows, 0)})
    champion_rates = {"AA": 0.10, "UA": 0.20}
    at_tolerance = {"AA": 0.10, "UA": 0.22}
    planted = {"AA": 0.10, "UA": 0.35}
    rng = np.random.default_rng(7)
    refused_at_tolerance = refused_planted = 0
    for _ in range(trials):
        p_champ = _simulated(rng, champion_rates, rows)
        for rates, planted_gap in ((at_tolerance, False), (planted, True)):
            p_model = _simulated(rng, rates, rows)
            verdict = judge_fairness(
                frame, p_model, 0.5, p_champ, 0.5, tolerance, "3", min_rows=50, resamples=400
            )
            if planted_gap:
                refused_planted += not verdict.allowed
            else:
                refused_at_tolerance += not verdict.allowed
    assert refused_planted == trials
    # stated: <= 2.5 % on the one column that varies; 7 % is ~3 standard errors above it
    assert refused_at_tolerance / trials <= 0.07


def test_the_gate_rejects_on_the_fairness_rule_after_every_other_check_passed() -> None:
    frame, p_model, p_champ = _paired(
        {"AA": (1000, 100), "UA": (1000, 450)}, {"AA": (1000, 150), "UA": (1000, 180)}
    )
    training = TrainingSettings()
    verdict = judge_fairness(
        frame, p_model, 0.5, p_champ, 0.5, training.gate_fairness_tolerance, "3", min_rows=50
    )
    good = {"roc_auc": 0.80}
    decision = decide_gate(
        good, {"roc_auc": 0.6}, training, {"roc_auc": 0.7}, champion_version="3", fairness=verdict
    )
    assert decision.gate == "rejected"
    assert decision.reason.startswith("fairness: carrier gap")
    passed = judge_fairness(
        frame, p_model, 0.5, p_model, 0.5, training.gate_fairness_tolerance, "3", min_rows=50
    )
    decision = decide_gate(
        good, {"roc_auc": 0.6}, training, {"roc_auc": 0.7}, champion_version="3", fairness=passed
    )
    assert decision.gate == "challenger"
    assert "fairness within" in decision.reason


def test_markdown_shows_every_column_and_the_champions_gap() -> None:
    frame, p = _frame({"AA": (1000, 100), "UA": (1000, 400)})
    report = error_rates(frame, p, 0.5, min_rows=50).to_dict()
    verdict = judge_fairness(frame, p, 0.5, p, 0.5, 0.02, "3", min_rows=50)
    text = "\n".join(markdown(report, report, asdict(verdict)))
    assert "Gate rule (passed)" in text
    assert "| carrier | +0.0000 | [+0.0000, +0.0000] |" in text
    assert "| carrier |" in text
    assert "| origin |" in text
    assert "UA vs AA" in text
    assert "carrier=UA" in text
