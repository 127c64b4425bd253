"""The evaluate step with its cost: the CPU seconds of the evaluation, the challenger's serving
cost measured against the champion's, and the gate's serving-cost rule
(:func:`driftloop.cost.judge_serving_cost`).

A challenger has not served yet when the gate decides, so its live cost per prediction is
unknown. What differs between two versions on the same serving path is the model call, and that
can be measured here: both models score the same holdout rows (a seeded sample of at most
``cost.gate_max_rows``), in this process, through the same ``predict_proba`` serving calls on
the runtime serving runs them on (:mod:`driftloop.inference`'s NumPy model; torch for a
champion saved before ``weights.npz`` existed), ``cost.gate_repeats`` times alternately after a
warm-up pass, on one thread (torch's and the BLAS pool's). Each pair of
passes gives one challenger/champion cost ratio; the rule decides on a sign-test bound of their
median, and on the paired-DeLong ROC AUC gain of the warm-up scores on the same rows (see
:func:`driftloop.cost.judge_serving_cost` for the error rates). The fastest pass of each model
is what is logged (the one least disturbed by other threads). One thread, because the CPU
time of a thread pool includes its workers spinning between parallel regions: measured with two
threads, two models of the same architecture differed by -55 % to +43 %, with one thread by
under 2 %. The result, CPU seconds per 1,000 predictions, is
logged on the run (``cost.predict_cpu_s_per_1k``, ``cost.champion_predict_cpu_s_per_1k``) with
the rule's verdict (tag ``driftloop.cost_gate``); a refusal turns the gate to ``rejected`` with
the numbers in its reason. Serving's own measurement of live traffic is
``driftloop_serving_cpu_seconds_per_1k_predictions`` on ``/metrics`` (:mod:`serving.cost`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
import torch
from threadpoolctl import threadpool_limits

from driftloop import cost
from driftloop.registry import client as registry
from driftloop.registry import tracking as tr
from driftloop.schema import LABEL
from driftloop.settings import Settings
from driftloop.stats import PairedAucGain, paired_auc_gain
from driftloop.training.evaluate_run import evaluate_fitted
from driftloop.training.job import Evaluation, FittedRun, TrainJob
from driftloop.training.pyfunc import load_serving_model

logger = logging.getLogger(__name__)

#: Run tag holding the serving-cost rule's verdict in words.
TAG_COST_GATE = "driftloop.cost_gate"

Predict = Callable[[pd.DataFrame], Any]


@dataclass(frozen=True)
class ScoringPasses:
    """CPU seconds per 1,000 rows of each predictor in every timed pass (passes alternate
    between the predictors, so pass ``i`` of each ran side by side), and each predictor's
    scores from its warm-up pass."""

    per_1k: dict[str, list[float]]
    scores: dict[str, np.ndarray]

    def fastest(self) -> dict[str, float]:
        return {name: min(values) for name, values in self.per_1k.items()}

    def ratios(self, numerator: str, denominator: str) -> list[float]:
        """Cost ratio of ``numerator`` to ``denominator`` in each pair of passes."""
        return [
            a / b
            for a, b in zip(self.per_1k[numerator], self.per_1k[denominator], strict=True)
            if b > 0
        ]


def scoring_passes(
    predictors: dict[str, Predict], frame: pd.DataFrame, repeats: int
) -> ScoringPasses:
    """One warm-up pass each (its scores are kept), then ``repeats`` timed passes alternating
    between the predictors."""
    if frame.empty:
        raise ValueError("no rows to measure the scoring cost on")
    scores = {  # warm-up: lazy initialisation is no per-prediction cost
        name: np.asarray(predict(frame), dtype=np.float64) for name, predict in predictors.items()
    }
    per_1k: dict[str, list[float]] = {name: [] for name in predictors}
    for _ in range(max(1, repeats)):
        for name, predict in predictors.items():
            started = cost.process_cpu_seconds()
            predict(frame)
            per_1k[name].append((cost.process_cpu_seconds() - started) / len(frame) * 1000.0)
    return ScoringPasses(per_1k, scores)


def scoring_cpu_per_1k(
    predictors: dict[str, Predict], frame: pd.DataFrame, repeats: int
) -> dict[str, float]:
    """CPU seconds per 1,000 rows of each predictor on ``frame``: its fastest timed pass (the
    one least disturbed by other threads)."""
    return scoring_passes(predictors, frame, repeats).fastest()


@dataclass(frozen=True)
class CostMeasurement:
    """What the gate's serving-cost rule decides on: each model's fastest pass (logged), the
    paired passes' cost ratios and the paired ROC AUC gain on the same rows."""

    fastest: dict[str, float]
    ratios: list[float] = field(default_factory=list)
    auc_gain: PairedAucGain | None = None


def _sample(holdout: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    return holdout.sample(rows, random_state=seed) if len(holdout) > rows else holdout


def measure_serving_cost(
    job: TrainJob, fitted: FittedRun, champion_version: str | None, settings: Settings
) -> CostMeasurement:
    """The new model's and (when given and loadable) ``champion_version``'s CPU seconds per
    1,000 predictions, their paired ratios and the AUC gain, on the same holdout rows."""
    frame = _sample(job.data.holdout, settings.cost.gate_max_rows, job.params.seed)
    # the runtime serving will run each version on (NumPy; torch for a champion saved before
    # weights.npz existed)
    predictors: dict[str, Predict] = {"challenger": fitted.bundle.to_numpy().predict_proba}
    if champion_version is not None:
        try:
            info = registry.get_version(champion_version, settings)
            predictors["champion"] = load_serving_model(info.uri, settings).predict_proba
        except Exception as exc:  # no measurement, no cost verdict: say why
            logger.warning("champion v%s not measured for cost: %s", champion_version, exc)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a pool's spinning workers would be measured as cost (module doc)
    try:
        with threadpool_limits(1):  # NumPy's BLAS pool: the same reason
            passes = scoring_passes(predictors, frame, settings.cost.gate_repeats)
    finally:
        torch.set_num_threads(threads)
    if "champion" not in predictors:
        return CostMeasurement(passes.fastest())
    gain = None
    if LABEL in frame.columns:
        gain = paired_auc_gain(
            frame[LABEL].to_numpy(dtype=np.float64),
            passes.scores["challenger"],
            passes.scores["champion"],
            confidence=1 - settings.cost.gate_alpha,
        )
    return CostMeasurement(passes.fastest(), passes.ratios("challenger", "champion"), gain)


def _fit_cpu_seconds(run_id: str, settings: Settings) -> float:
    """The fit step's CPU seconds as its run logged them (0 for runs from before the metric)."""
    try:
        _, _, metrics = registry.get_run_data(run_id, settings)
    except Exception:  # the total is then the evaluation's alone; the run keeps the rest
        logger.warning("could not read the fit's cost of run %s", run_id, exc_info=True)
        return 0.0
    return float(metrics.get(cost.FIT_CPU_SECONDS, 0.0))


def apply_cost_rule(
    evaluation: Evaluation, measured: CostMeasurement, settings: Settings
) -> tuple[Evaluation, cost.ServingCostVerdict | None]:
    """The evaluation after the serving-cost rule (None: not judged, the gate did not make the
    version challenger). A refusal turns the gate to ``rejected`` with the numbers."""
    if evaluation.decision_gate != "challenger":
        return evaluation, None
    verdict = cost.judge_serving_cost(
        measured.fastest.get("challenger"),
        measured.fastest.get("champion"),
        measured.ratios,
        measured.auc_gain,
        settings.cost,
    )
    if verdict.allowed:
        return evaluation, verdict
    refused = replace(
        evaluation,
        decision_gate="rejected",
        decision_reason=f"{verdict.reason} (passed the quality gate: {evaluation.decision_reason})",
    )
    return refused, verdict


def evaluate_with_cost(job: TrainJob, fitted: FittedRun, settings: Settings) -> Evaluation:
    """:func:`~driftloop.training.evaluate_run.evaluate_fitted`, then the serving-cost rule; logs
    the evaluation's CPU seconds, the run's total (``cost.cpu_seconds`` = fit + evaluate) and
    the measured serving costs on the run."""
    meter = cost.Meter().start()
    evaluation = evaluate_fitted(job, fitted, settings)
    champion = evaluation.champion_version if evaluation.decision_gate == "challenger" else None
    measured = measure_serving_cost(job, fitted, champion, settings)
    evaluation, verdict = apply_cost_rule(evaluation, measured, settings)
    usage = meter.stop()
    metrics = {
        cost.EVALUATE_CPU_SECONDS: usage.cpu_seconds,
        cost.CPU_SECONDS: _fit_cpu_seconds(fitted.run_id, settings) + usage.cpu_seconds,
        cost.PREDICT_CPU_PER_1K: measured.fastest["challenger"],
    }
    if "champion" in measured.fastest:
        metrics[cost.CHAMPION_PREDICT_CPU_PER_1K] = measured.fastest["champion"]
    with tr.start_run(run_id=fitted.run_id):
        tr.log_metrics(metrics)
        if verdict is not None:
            tr.set_tags({TAG_COST_GATE: verdict.reason[:4000]})
            tr.log_json(verdict.to_dict(), "evaluation/serving_cost.json")
        if verdict is not None and not verdict.allowed:
            tr.set_tags(
                {
                    tr.TAG_GATE: evaluation.decision_gate,
                    tr.TAG_GATE_REASON: evaluation.decision_reason[:4000],
                }
            )
    if verdict is not None:
        logger.info("serving-cost rule: %s", verdict.reason)
    return evaluation
