"""Canary analysis on captured rows: per-variant numbers and the promote/rollback rules."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from driftloop.loop.rollout import PROMOTE, ROLLBACK, compare
from driftloop.monitoring.canary import VariantStats, variant_stats
from driftloop.settings import Settings


def _rows(n: int, latency: float, prob: float, error: str | None = None, labels: bool = False):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, n)
    return pd.DataFrame(
        {
            "request_id": [f"r{i}" for i in range(n)],
            "latency_ms": np.full(n, latency),
            "error": [error] * n,
            "late_probability": np.clip(prob + 0.3 * (y - 0.5), 0, 1) if not error else np.nan,
            "is_late": pd.array(y if labels else [None] * n, dtype="Int8"),
        }
    )


def test_variant_stats_counts_requests_errors_latency_and_auc() -> None:
    s = variant_stats(_rows(200, 3.0, 0.3, labels=True), "2", min_labeled=100)
    assert s.requests == 200
    assert s.error_rate == 0.0
    assert s.p95_latency_ms == 3.0
    assert s.auc == 1.0  # the score is a function of the label here
    few = variant_stats(_rows(50, 3.0, 0.3, labels=True), "2", min_labeled=100)
    assert few.auc is None


def test_compare_rolls_back_on_errors_latency_shift_and_quality(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path)
    champ = variant_stats(_rows(300, 2.0, 0.3, labels=True), "1", 100)
    good = variant_stats(_rows(300, 2.5, 0.32, labels=True), "2", 100)
    assert compare(champ, good, settings)[0] == PROMOTE

    failing = variant_stats(_rows(300, 2.0, 0.3, error="boom"), "2", 100)
    decision, reasons = compare(champ, failing, settings)
    assert decision == ROLLBACK
    assert "error rate 100.00%" in reasons[0]

    slow = variant_stats(_rows(300, 60.0, 0.3), "2", 100)
    decision, reasons = compare(champ, slow, settings)
    assert decision == ROLLBACK
    assert "p95 latency 60.0 ms" in reasons[0]

    shifted = variant_stats(_rows(300, 2.0, 0.7), "2", 100)
    assert "mean predicted probability" in compare(champ, shifted, settings)[1][0]

    worse = VariantStats("2", requests=300, p95_latency_ms=2.0, mean_probability=0.3, auc=0.6)
    champ_auc = VariantStats("1", requests=300, p95_latency_ms=2.0, mean_probability=0.3, auc=0.7)
    assert "live ROC AUC 0.600" in compare(champ_auc, worse, settings)[1][0]


def test_latency_ratio_ignores_differences_below_the_floor(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path)
    champ = VariantStats("1", requests=100, p95_latency_ms=0.4)
    chall = VariantStats("2", requests=100, p95_latency_ms=1.5)  # x3.7, but both < 5 ms
    assert compare(champ, chall, settings)[0] == PROMOTE


def test_no_challenger_traffic_means_rollback(tmp_path: Path) -> None:
    decision, reasons = compare(VariantStats("1"), VariantStats("2"), Settings(state_dir=tmp_path))
    assert decision == ROLLBACK
    assert "no request" in reasons[0]


def test_with_labels_a_prediction_shift_is_judged_against_the_observed_rate(
    tmp_path: Path,
) -> None:
    settings = Settings(state_dir=tmp_path)
    # Labels are late about half of the time; the champion predicts ~0.3 (>0.15 off).
    rows = _rows(300, 2.0, 0.3, labels=True)
    champ = variant_stats(rows, "1", 100)
    expected = abs(rows["late_probability"].mean() - rows["is_late"].astype(float).mean())
    assert champ.calibration_gap is not None
    assert abs(champ.calibration_gap - expected) < 1e-9
    assert champ.calibration_gap > 0.15
    # A retrained model moved to ~0.5: a shift of 0.2 (> 0.15), but toward the truth.
    recalibrated = variant_stats(_rows(300, 2.0, 0.5, labels=True), "2", 100)
    decision, reasons = compare(champ, recalibrated, settings)
    assert decision == PROMOTE, reasons
    # Without labels the same shift is all the rollout can see: rolled back.
    unlabeled = [variant_stats(_rows(300, 2.0, p), v, 100) for p, v in ((0.3, "1"), (0.5, "2"))]
    assert compare(*unlabeled, settings)[0] == ROLLBACK
    # Moving away from the truth by more than the allowance is rolled back, naming it.
    calibrated = variant_stats(_rows(300, 2.0, 0.55, labels=True), "1", 100)
    far = variant_stats(_rows(300, 2.0, 0.95, labels=True), "2", 100)
    decision, reasons = compare(calibrated, far, settings)
    assert decision == ROLLBACK
    assert "from the observed late rate" in reasons[0]


def test_latency_is_judged_on_the_model_call_not_the_challengers_thread_hop(
    tmp_path: Path,
) -> None:
    """The challenger predicts in a worker thread: under load its requests wait for the event
    loop, which the champion's inline requests do not. The canary judges the model call."""
    settings = Settings(state_dir=tmp_path)
    champ_rows = _rows(300, 1.5, 0.3).assign(model_ms=0.4)
    chall_rows = _rows(300, 12.0, 0.3).assign(model_ms=0.5)  # 12 ms per request, 0.5 ms model
    champ, chall = variant_stats(champ_rows, "1", 100), variant_stats(chall_rows, "2", 100)
    assert (chall.p95_latency_ms, chall.p95_request_ms) == (0.5, 12.0)
    decision, reasons = compare(champ, chall, settings)
    assert decision == PROMOTE, reasons
    assert "12.0 ms per request" in reasons[0]
    slow_model = variant_stats(_rows(300, 70.0, 0.3).assign(model_ms=60.0), "2", 100)
    decision, reasons = compare(champ, slow_model, settings)
    assert decision == ROLLBACK
    assert "p95 latency 60.0 ms vs champion 0.4 ms in the model call" in reasons[0]
