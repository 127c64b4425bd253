"""Prefect flow ``tune``: Optuna trials (nested MLflow runs) on a training window; the best
parameters are saved for ``train(use_best_params=True)``. Work: driftloop.training.tuning."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NONE

from driftloop.training.tuning import tune as run_tune
from flows.names import tune_run_name


@task(name="optuna-trials", cache_policy=NONE)
def tune_task(
    start_month: str, end_month: str, trials: int, epochs: int | None, study_name: str | None
) -> dict[str, Any]:
    logger = get_run_logger()
    result = run_tune(
        start_month,
        end_month,
        trials,
        study_name=study_name,
        epochs=epochs,
        on_trial=lambda n, v, s: logger.info("trial %d %s: val ROC AUC %.4f", n, s, v),
    )
    return {
        "study": result.study_name,
        "trials_total": result.trials_total,
        "pruned": result.pruned,
        "best_value": result.best_value,
        "best_params": result.best_params,
        "best_params_path": str(result.best_params_path),
        "run_id": result.run_id,
    }


@flow(name="tune", flow_run_name=tune_run_name, log_prints=False)
def tune(
    start_month: str = "2013-01",
    end_month: str = "2013-03",
    trials: int = 10,
    epochs: int | None = None,
    study_name: str | None = None,
) -> dict[str, Any]:
    """Add ``trials`` Optuna trials to the study (same name resumes it)."""
    return tune_task(start_month, end_month, trials, epochs, study_name)
