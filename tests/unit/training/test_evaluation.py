"""Metrics, baselines and the evaluation gate."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from driftloop.inference.preprocessing import Preprocessor
from driftloop.settings import TrainingSettings
from driftloop.training.evaluation import (
    LogisticBaseline,
    NaiveBaseline,
    binary_metrics,
    calibration_table,
    cost_optimal_threshold,
    decide_gate,
    expected_calibration_error,
    slice_metrics,
)


def test_cost_optimal_threshold_matches_brute_force() -> None:
    rng = np.random.default_rng(1)
    y = (rng.random(300) < 0.3).astype(float)
    p = np.round(np.clip(y * 0.3 + rng.random(300) * 0.7, 0, 1), 2)  # ties on purpose
    threshold, cost = cost_optimal_threshold(y, p, cost_fn=5.0, cost_fp=1.0)
    best = min(
        (((p < t) & (y == 1)).sum() * 5 + ((p >= t) & (y == 0)).sum(), t)
        for t in itertools.chain(np.unique(p), [1.1])
    )
    assert cost == pytest.approx(best[0] / len(y))
    realised = ((p < threshold) & (y == 1)).sum() * 5 + ((p >= threshold) & (y == 0)).sum()
    assert realised == best[0]


def test_higher_false_negative_cost_lowers_the_threshold() -> None:
    rng = np.random.default_rng(2)
    y = (rng.random(2000) < 0.25).astype(float)
    p = np.clip(0.25 + 0.3 * (y - 0.25) + rng.normal(0, 0.15, 2000), 0, 1)
    cheap, _ = cost_optimal_threshold(y, p, cost_fn=1.0, cost_fp=1.0)
    dear, _ = cost_optimal_threshold(y, p, cost_fn=10.0, cost_fp=1.0)
    assert dear < cheap


def test_perfectly_calibrated_scores_have_small_ece() -> None:
    rng = np.random.default_rng(3)
    p = rng.random(50_000)
    y = (rng.random(50_000) < p).astype(float)
    table = calibration_table(y, p)
    assert table["rows"].sum() == 50_000
    assert expected_calibration_error(table) < 0.01
    assert expected_calibration_error(calibration_table(y, p * 0.5)) > 0.2


def test_binary_metrics_of_a_perfect_and_a_random_scorer() -> None:
    y = np.array([0, 0, 1, 1, 0, 1], dtype=float)
    perfect = binary_metrics(y, y * 0.9 + 0.05)
    assert perfect["roc_auc"] == 1.0
    assert perfect["precision"] == 1.0
    assert perfect["recall"] == 1.0
    flat = binary_metrics(y, np.full(6, 0.5))
    assert flat["roc_auc"] == 0.5


def test_naive_baseline_uses_group_rates_and_falls_back_to_global() -> None:
    train = pd.DataFrame(
        {"carrier": ["UA", "UA", "B6", "B6"], "origin": ["EWR"] * 4, "is_late": [1, 1, 0, 0]}
    )
    base = NaiveBaseline.fit(train)
    test = pd.DataFrame({"carrier": ["UA", "B6", "ZZ"], "origin": ["EWR", "EWR", "JFK"]})
    np.testing.assert_allclose(base.predict_proba(test), [1.0, 0.0, 0.5])


def test_logistic_baseline_learns_the_signal(frame: pd.DataFrame) -> None:
    pre = Preprocessor.fit(frame)
    model = LogisticBaseline.fit(pre, frame.iloc[:3000])
    metrics = binary_metrics(
        frame["is_late"].iloc[3000:].to_numpy(float), model.predict_proba(frame.iloc[3000:])
    )
    assert metrics["roc_auc"] > 0.7


def _slices(auc: float) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"slice": "carrier", "value": "UA", "rows": 1000, "roc_auc": auc},
            {"slice": "carrier", "value": "XX", "rows": 10, "roc_auc": 0.1},
        ]
    )


T = TrainingSettings()


def test_gate_rejects_a_model_that_does_not_beat_the_baseline() -> None:
    d = decide_gate({"roc_auc": 0.605}, {"roc_auc": 0.60}, T)
    assert d.gate == "rejected"
    assert d.alias is None
    assert "naive baseline" in d.reason


def test_gate_crowns_the_first_model_that_beats_the_baseline() -> None:
    d = decide_gate({"roc_auc": 0.70}, {"roc_auc": 0.60}, T)
    assert d.gate == "champion"
    assert d.alias == "champion"


def test_gate_rejects_a_model_worse_than_the_champion() -> None:
    d = decide_gate(
        {"roc_auc": 0.70}, {"roc_auc": 0.60}, T, {"roc_auc": 0.72}, champion_version="3"
    )
    assert d.gate == "rejected"
    assert "champion v3" in d.reason


def test_gate_rejects_when_a_large_slice_degrades() -> None:
    d = decide_gate(
        {"roc_auc": 0.75},
        {"roc_auc": 0.60},
        T,
        {"roc_auc": 0.72},
        model_slices=_slices(0.60),
        champion_slices=_slices(0.70),
        champion_version="3",
    )
    assert d.gate == "rejected"
    assert "carrier=UA" in d.reason


def test_gate_ignores_small_slices_and_names_a_challenger() -> None:
    model_slices = _slices(0.70)
    champion_slices = _slices(0.70)
    champion_slices.loc[1, "roc_auc"] = 0.9  # tiny slice got worse: not judged
    d = decide_gate(
        {"roc_auc": 0.75},
        {"roc_auc": 0.60},
        T,
        {"roc_auc": 0.72},
        model_slices=model_slices,
        champion_slices=champion_slices,
        champion_version="3",
    )
    assert d.gate == "challenger"
    assert d.alias == "challenger"


def test_slice_metrics_cover_every_carrier_and_origin(frame: pd.DataFrame) -> None:
    table = slice_metrics(frame, np.full(len(frame), 0.3))
    assert set(table.loc[table["slice"] == "carrier", "value"]) == set(frame["carrier"])
    assert set(table.loc[table["slice"] == "origin", "value"]) == set(frame["origin"])
    assert table["rows"].groupby(table["slice"]).sum().eq(len(frame)).all()
