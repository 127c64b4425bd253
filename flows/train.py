"""Prefect flow ``train`` with an ``evaluate`` subflow.

``train``: a task fits the model in an MLflow run (params, lineage, per-epoch metrics, the
pyfunc, the reference sample); the ``evaluate`` subflow then scores the model, the baselines and
the champion on the holdout month, applies the gate and registers the version. The subflow takes
only the run id (it reloads data at the recorded revision and the logged model), so it can also
be run alone for any finished fit. The work is in :mod:`driftloop.training.pipeline`.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE

from driftloop.training.model_card import card_uri
from driftloop.training.pipeline import (
    check_data_shift,
    fit_and_log,
    job_from_run,
    prepare,
    register,
)
from driftloop.training.pipeline import evaluate as evaluate_step
from flows.names import evaluate_run_name, train_run_name


@task(name="fit-model", cache_policy=NONE)
def fit_task(
    start_month: str,
    end_month: str,
    params: dict[str, Any],
    use_best_params: bool,
    resume: bool,
) -> str:
    """Load the window (Feast), train and log; returns the MLflow run id."""
    logger = get_run_logger()
    job = prepare(start_month, end_month, params=params, use_best_params=use_best_params or None)
    shift = check_data_shift(job)
    warning = ""
    if shift.flagged:
        logger.warning("data profile shift: %s", "; ".join(shift.findings()))
        verdict = "training stops" if shift.blocking else "flag only: training goes on"
        warning = f"**WARNING: the training data shifted beyond the limits ({verdict}).**\n\n"
    create_markdown_artifact(
        warning + shift.markdown(),
        key="data-profile-check",
        description="WARNING: data profile shift" if shift.flagged else "data profile check",
    )
    fitted = fit_and_log(
        job,
        resume=resume,
        on_epoch=lambda s: logger.info(
            "epoch %d: val loss %.4f, val ROC AUC %.4f", s.epoch, s.val_loss, s.val_auc
        ),
        shift=shift,
    )
    return fitted.run_id


def prefect_run_url() -> str | None:
    """The Prefect UI URL of the flow run in progress (None outside one, or without a UI URL):
    the version's description links to it."""
    from prefect.runtime import flow_run

    url = flow_run.ui_url
    return url if isinstance(url, str) and url.startswith(("http://", "https://")) else None


@task(name="evaluate-and-register", cache_policy=NONE)
def evaluate_task(run_id: str) -> dict[str, Any]:
    job, fitted = job_from_run(run_id)
    result = register(job, fitted, evaluate_step(job, fitted), prefect_run=prefect_run_url())
    return {
        "version": result.version,
        "run_id": result.run_id,
        "gate": result.gate,
        "alias": result.alias,
        "reason": result.reason,
        "compared_with": result.compared_with,
        "metrics": result.metrics,
        "model_card": card_uri(result.run_id),
    }


def _markdown(summary: dict[str, Any]) -> str:
    lines = [
        f"Version **{summary['version']}** -> `{summary['alias'] or 'no alias'}` "
        f"(gate {summary['gate']}: {summary['reason']})",
        "",
        f"Model card: `{summary['model_card']}` (and `card.json` next to it)",
        "",
        "| scorer | ROC AUC | log loss | Brier | ECE |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, m in summary["metrics"].items():
        lines.append(
            f"| {name} | {m['roc_auc']:.4f} | {m['log_loss']:.4f} | {m['brier']:.4f} "
            f"| {m['ece']:.4f} |"
        )
    return "\n".join(lines)


@flow(name="evaluate", flow_run_name=evaluate_run_name, log_prints=False)
def evaluate(run_id: str) -> dict[str, Any]:
    """Evaluate a fitted run on its holdout month, gate it and register the version."""
    summary = evaluate_task(run_id)
    create_markdown_artifact(_markdown(summary), key="evaluation", description="evaluation gate")
    return summary


@flow(name="train", flow_run_name=train_run_name, log_prints=False)
def train(
    start_month: str = "2013-01",
    end_month: str = "2013-03",
    epochs: int | None = None,
    batch_size: int | None = None,
    learning_rate: float | None = None,
    hidden_sizes: list[int] | None = None,
    dropout: float | None = None,
    seed: int | None = None,
    use_best_params: bool = False,
    resume: bool = False,
) -> dict[str, Any]:
    """Train on ``start_month``..``end_month`` and evaluate on the month after (empty
    hyperparameters: settings, or the tuned ones with ``use_best_params``)."""
    params = {
        "epochs": epochs,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "hidden_sizes": hidden_sizes,
        "dropout": dropout,
        "seed": seed,
    }
    run_id = fit_task(start_month, end_month, params, use_best_params, resume)
    return evaluate(run_id)
