"""The evaluate step of a training run: every scorer on the same holdout, the gate, artifacts.

Fairness: the error-rate gaps between carriers and between origins of the model (at its
cost-optimal threshold, the one it is registered and served with) and of the champion (at its
served threshold, tag ``driftloop.threshold``) on the same holdout
(:mod:`driftloop.training.fairness`): metrics ``holdout_{model,champion}_fairness_*`` and
``holdout_fairness_gap_change_*`` (the gate's paired estimate and interval), the report
``evaluation/fairness.json``, ``.csv`` and ``.md``, and the gate's rule.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from driftloop.errors import ModelIntegrityError
from driftloop.registry import client as registry
from driftloop.registry import tracking as tr
from driftloop.schema import LABEL
from driftloop.settings import Settings
from driftloop.training import fairness as fair
from driftloop.training.evaluation import (
    GateDecision,
    LogisticBaseline,
    NaiveBaseline,
    binary_metrics,
    calibration_table,
    decide_gate,
    slice_metrics,
)
from driftloop.training.explain import permutation_importance, plot_importance, plot_reliability
from driftloop.training.job import Evaluation, FittedRun, TrainJob
from driftloop.training.pyfunc import load_python_model

logger = logging.getLogger(__name__)


def _score_champion(
    holdout: pd.DataFrame, settings: Settings
) -> tuple[str | None, np.ndarray | None, str, float]:
    """(champion version, its holdout probabilities, problem, its served threshold) — (None,
    None, "", default threshold) without one."""
    champion = registry.get_alias(registry.CHAMPION, settings)
    if champion is None:
        return None, None, "", registry.DEFAULT_THRESHOLD
    try:
        threshold, _ = registry.decision_threshold(champion)
        model = load_python_model(champion.uri)
        p = np.asarray(model.predict_proba(holdout), dtype=np.float64)
        return champion.version, p, "", threshold
    except Exception as exc:  # an unloadable champion must not block every future version
        integrity = isinstance(exc, ModelIntegrityError)  # refused before it ran: say why
        logger.warning(
            "champion v%s could not be scored%s",
            champion.version,
            f": {exc}" if integrity else "",
            exc_info=not integrity,
        )
        return champion.version, None, f"{type(exc).__name__}: {exc}", registry.DEFAULT_THRESHOLD


def _fairness(
    holdout: pd.DataFrame, p: np.ndarray, threshold: float, settings: Settings
) -> fair.FairnessReport:
    t = settings.training
    return fair.error_rates(holdout, p, threshold, t.fairness_min_slice_rows, t.fairness_confidence)


def evaluate_fitted(job: TrainJob, fitted: FittedRun, settings: Settings) -> Evaluation:
    tr.setup_mlflow(settings)
    data, t = job.data, settings.training
    holdout = data.holdout
    y = holdout[LABEL].to_numpy(dtype=np.float64)
    fit_rows, _ = data.split_validation(t.validation_share)

    p_model = fitted.bundle.predict_proba(holdout)
    p_naive = NaiveBaseline.fit(fit_rows).predict_proba(holdout)
    logistic = LogisticBaseline.fit(fitted.bundle.preprocessor, fit_rows, seed=job.params.seed)
    p_logit = logistic.predict_proba(holdout)
    kpi = settings.kpi
    cost = {"cost_fn": kpi.cost_false_negative, "cost_fp": kpi.cost_false_positive}
    metrics = {
        "model": binary_metrics(y, p_model, **cost),
        "baseline": binary_metrics(y, p_naive, **cost),
        "logistic": binary_metrics(y, p_logit, **cost),
    }
    model_slices = slice_metrics(holdout, p_model)
    champion_version, p_champion, problem, champion_threshold = _score_champion(holdout, settings)
    champion_slices = None
    model_fair = _fairness(holdout, p_model, metrics["model"]["threshold"], settings)
    champion_fair: fair.FairnessReport | None = None
    verdict: fair.FairnessVerdict | None = None
    if p_champion is not None:
        metrics["champion"] = binary_metrics(y, p_champion, **cost)
        champion_slices = slice_metrics(holdout, p_champion)
        champion_fair = _fairness(holdout, p_champion, champion_threshold, settings)
        verdict = fair.judge_fairness(
            holdout,
            p_model,
            metrics["model"]["threshold"],
            p_champion,
            champion_threshold,
            t.gate_fairness_tolerance,
            champion_version,
            min_rows=t.fairness_min_slice_rows,
            confidence=t.fairness_confidence,
        )
    decision = decide_gate(
        metrics["model"],
        metrics["baseline"],
        t,
        champion=metrics.get("champion"),
        model_slices=model_slices,
        champion_slices=champion_slices,
        champion_version=champion_version,
        fairness=verdict,
    )
    if decision.gate == "champion":  # nothing to compare with: the gaps are stated
        decision = GateDecision(
            "champion", f"{decision.reason}; worst error-rate gaps: {model_fair.summary()}"
        )
    if champion_version is not None and p_champion is None and decision.gate == "champion":
        decision = GateDecision(
            "challenger",
            f"{decision.reason}; champion v{champion_version} could not be scored ({problem}), "
            "so the version competes live as challenger",
        )

    calibration = calibration_table(y, p_model)
    importance = permutation_importance(fitted.bundle.predict_proba, holdout, seed=job.params.seed)
    slices = model_slices.copy()
    if champion_slices is not None:
        slices = slices.merge(
            champion_slices[["slice", "value", "roc_auc"]].rename(
                columns={"roc_auc": "champion_roc_auc"}
            ),
            on=["slice", "value"],
            how="left",
        )
    with tr.start_run(run_id=fitted.run_id):
        for name, values in metrics.items():
            tr.log_metrics(tr.flat_metrics(f"holdout_{name}", values))
        tr.set_tags(
            {
                tr.TAG_GATE: decision.gate,
                tr.TAG_GATE_REASON: decision.reason[:4000],
                tr.TAG_COMPARED_WITH: champion_version or "none",
            }
        )
        tr.log_json(metrics, "evaluation/metrics.json")
        tr.log_table(slices, "evaluation/slices.csv")
        tr.log_table(calibration, "evaluation/reliability.csv")
        _log_fairness(model_fair, champion_fair, verdict)
        tr.log_table(importance, "explain/permutation_importance.csv")
        tr.log_json(importance.to_dict(orient="records"), "explain/permutation_importance.json")
        with tempfile.TemporaryDirectory() as tmp:
            tr.log_artifact(
                str(plot_reliability(calibration, Path(tmp) / "reliability.png")), "evaluation"
            )
            tr.log_artifact(
                str(plot_importance(importance, Path(tmp) / "permutation_importance.png")),
                "explain",
            )
    logger.info(
        "holdout %s ROC AUC: model %.4f, baseline %.4f, logistic %.4f%s -> %s",
        data.holdout_month,
        metrics["model"]["roc_auc"],
        metrics["baseline"]["roc_auc"],
        metrics["logistic"]["roc_auc"],
        f", champion v{champion_version} {metrics['champion']['roc_auc']:.4f}"
        if "champion" in metrics
        else "",
        decision.gate,
    )
    return Evaluation(
        metrics=metrics,
        decision_gate=decision.gate,
        decision_reason=decision.reason,
        champion_version=champion_version,
        slices=slices,
    )


def _log_fairness(
    model: fair.FairnessReport,
    champion: fair.FairnessReport | None,
    verdict: fair.FairnessVerdict | None,
) -> None:
    """The fairness numbers in the active run: metrics, JSON, CSV and the Markdown report."""
    tr.log_metrics(model.metrics("holdout_model"))
    if champion is not None:
        tr.log_metrics(champion.metrics("holdout_champion"))
    if verdict is not None:
        tr.log_metrics(verdict.metrics())
    record = {
        "model": model.to_dict(),
        "champion": champion.to_dict() if champion is not None else None,
        "verdict": None if verdict is None else asdict(verdict),
    }
    tr.log_json(record, fair.FAIRNESS_JSON)
    table = model.frame()
    if champion is not None:
        theirs = champion.frame()[["column", "value", "rate", "lower", "upper"]]
        table = table.merge(
            theirs.add_prefix("champion_").rename(
                columns={"champion_column": "column", "champion_value": "value"}
            ),
            on=["column", "value"],
            how="left",
        )
    tr.log_table(table, fair.FAIRNESS_CSV)
    lines = ["# Fairness: error-rate gaps on the holdout", ""]
    if verdict is not None:
        lines += [f"**Gate rule:** {verdict.reason}", ""]
    lines += fair.markdown(
        model.to_dict(), champion.to_dict() if champion is not None else None, record["verdict"]
    )
    tr.log_text("\n".join(lines) + "\n", fair.FAIRNESS_MARKDOWN)
