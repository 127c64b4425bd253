"""The gate's serving-cost measurement and rule (driftloop.training.serving_cost) on real
models: scoring cost is CPU time per 1,000 rows; a costlier challenger without a quality gain
is turned to rejected with the numbers, one with a gain stays challenger."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from driftloop.settings import Settings
from driftloop.stats import PairedAucGain
from driftloop.training.bundle import ModelBundle
from driftloop.training.job import Evaluation
from driftloop.training.serving_cost import (
    CostMeasurement,
    apply_cost_rule,
    scoring_cpu_per_1k,
    scoring_passes,
)
from driftloop.training.trainer import TrainParams, fit


def _bundle(frame: pd.DataFrame, hidden: list[int]) -> ModelBundle:
    params = TrainParams(epochs=1, batch_size=512, hidden_sizes=hidden, seed=3)
    result = fit(frame.iloc[:3000], frame.iloc[3000:], params)
    assert result.usage.cpu_seconds > 0  # the fit measured itself
    assert result.usage.gpu_seconds == 0.0  # on CPU
    assert result.cost_metrics()["cost.fit_cpu_seconds"] == result.usage.cpu_seconds
    return ModelBundle(result.model, result.preprocessor)


def test_a_bigger_model_measures_costlier_per_1000_predictions(frame: pd.DataFrame) -> None:
    small, big = _bundle(frame, [8]), _bundle(frame, [1024, 1024])
    rows = frame.iloc[3000:]
    measured = scoring_cpu_per_1k(
        {"champion": small.predict_proba, "challenger": big.predict_proba}, rows, repeats=3
    )
    assert 0 < measured["champion"] < measured["challenger"]
    assert measured["challenger"] > 1.25 * measured["champion"]
    with pytest.raises(ValueError, match="no rows"):
        scoring_cpu_per_1k({"x": small.predict_proba}, rows.iloc[:0], repeats=1)


def _evaluation(gate: str, model_auc: float, champion_auc: float) -> Evaluation:
    metrics = {"model": {"roc_auc": model_auc}, "champion": {"roc_auc": champion_auc}}
    return Evaluation(metrics, gate, "beats the champion", "4")


def _measured(ratio: float, gain: float, lower: float) -> CostMeasurement:
    return CostMeasurement(
        {"challenger": ratio, "champion": 1.0},
        [ratio * (1 + d) for d in (-0.02, -0.01, 0, 0.01, 0.02, 0, 0.01, -0.01, 0)],
        PairedAucGain(gain, lower, 0.003, 5000, 0.95),
    )


def test_rule_turns_a_costlier_challenger_without_gain_to_rejected() -> None:
    settings = Settings()
    evaluation, verdict = apply_cost_rule(
        _evaluation("challenger", 0.701, 0.700), _measured(3.0, 0.001, -0.004), settings
    )
    assert evaluation.decision_gate == "rejected"
    assert evaluation.alias is None
    assert verdict is not None
    assert not verdict.allowed
    assert verdict.increase == pytest.approx(2.0)
    assert verdict.auc_gain == pytest.approx(0.001)
    assert "serving cost +200% CPU s per 1,000 predictions vs the champion (median of 9" in (
        evaluation.decision_reason
    )
    assert "passed the quality gate: beats the champion" in evaluation.decision_reason


def test_rule_keeps_a_costlier_challenger_with_a_quality_gain() -> None:
    settings = Settings()
    evaluation, verdict = apply_cost_rule(
        _evaluation("challenger", 0.72, 0.70), _measured(3.0, 0.02, 0.014), settings
    )
    assert evaluation.decision_gate == "challenger"
    assert verdict is not None
    assert verdict.allowed


def test_passes_pair_up_and_keep_the_warm_up_scores(frame: pd.DataFrame) -> None:
    small = _bundle(frame, [8])
    rows = frame.iloc[3000:3500]
    passes = scoring_passes({"a": small.predict_proba, "b": small.predict_proba}, rows, repeats=5)
    assert [len(v) for v in passes.per_1k.values()] == [5, 5]
    assert len(passes.ratios("a", "b")) == 5
    assert np.array_equal(passes.scores["a"], passes.scores["b"])  # same model, same rows
    assert passes.scores["a"].shape == (500,)


def test_rule_judges_only_challengers() -> None:
    settings = Settings()
    first = Evaluation({"model": {"roc_auc": 0.7}}, "champion", "no champion yet", None)
    evaluation, verdict = apply_cost_rule(first, CostMeasurement({"challenger": 9.0}), settings)
    assert (evaluation, verdict) == (first, None)
