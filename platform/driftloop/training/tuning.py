"""Hyperparameter tuning: Optuna (TPE sampler + median pruner) with one nested MLflow run per
trial. The study lives in SQLite under ``{state}/tuning/optuna.db``; running again with the same
study name continues it. The best parameters go to ``{state}/tuning/best_params.json``, which
``driftloop train --use-best-params`` (or DRIFTLOOP_TRAINING__USE_BEST_PARAMS=true) trains with.

Trials are judged on the validation split of the training window (the latest
``validation_share``), never on the holdout month the evaluation gate uses.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from driftloop.errors import TrainingError
from driftloop.registry import tracking as tr
from driftloop.registry.client import ping
from driftloop.settings import Settings, get_settings
from driftloop.training.inputs import TrainingData, load_training_data
from driftloop.training.trainer import EpochStats, TrainParams, fit

logger = logging.getLogger(__name__)

HIDDEN_CHOICES = {"64-32": [64, 32], "128-64": [128, 64], "256-128": [256, 128]}


@dataclass
class TuneResult:
    study_name: str
    trials_run: int
    trials_total: int
    pruned: int
    best_value: float
    best_params: dict[str, Any]
    best_params_path: Path
    run_id: str


def tuning_dir(settings: Settings) -> Path:
    folder = settings.state / "tuning"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def storage_url(settings: Settings) -> str:
    return f"sqlite:///{tuning_dir(settings) / 'optuna.db'}"


def suggest(trial: Any) -> dict[str, Any]:
    """The search space (TrainParams fields)."""
    hidden = trial.suggest_categorical("hidden", list(HIDDEN_CHOICES))
    return {
        "learning_rate": trial.suggest_float("learning_rate", 3e-4, 1e-2, log=True),
        "weight_decay": trial.suggest_float("weight_decay", 1e-6, 1e-3, log=True),
        "batch_size": trial.suggest_categorical("batch_size", [512, 1024, 2048, 4096]),
        "dropout": trial.suggest_float("dropout", 0.0, 0.3),
        "embedding_dim": trial.suggest_categorical("embedding_dim", [4, 8, 16]),
        "hidden_sizes": HIDDEN_CHOICES[hidden],
    }


def tune(
    start_month: str,
    end_month: str,
    trials: int,
    settings: Settings | None = None,
    study_name: str | None = None,
    epochs: int | None = None,
    data: TrainingData | None = None,
    on_trial: Callable[[int, float, str], None] | None = None,
) -> TuneResult:
    """Run ``trials`` more trials of the study and save its best parameters."""
    import optuna

    if trials < 1:
        raise TrainingError("--trials must be at least 1")
    settings = settings or get_settings()
    ping(settings)
    data = data or load_training_data(start_month, end_month, settings)
    fit_rows, val_rows = data.split_validation(settings.training.validation_share)
    base = TrainParams.from_settings(settings.training, epochs=epochs)
    name = study_name or f"driftloop-{data.window}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=name,
        storage=storage_url(settings),
        load_if_exists=True,
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=base.seed + len_trials(name, settings)),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1),
    )
    tr.setup_mlflow(settings)

    def objective(trial: optuna.Trial) -> float:
        params = TrainParams(**{**base.to_dict(), **suggest(trial)})
        with tr.start_run(run_name=f"trial {trial.number}", nested=True):
            tr.log_params(
                {
                    k: json.dumps(v) if isinstance(v, list) else v
                    for k, v in params.to_dict().items()
                }
            )
            tr.set_tags({"optuna.study": name, "optuna.trial": str(trial.number)})

            def report(stats: EpochStats) -> None:
                tr.log_metrics(
                    {"val_roc_auc": stats.val_auc, "val_loss": stats.val_loss}, step=stats.epoch
                )
                trial.report(stats.val_auc, stats.epoch)
                if trial.should_prune():
                    tr.set_tag("optuna.state", "pruned")
                    raise optuna.TrialPruned(f"pruned after epoch {stats.epoch}")

            result = fit(fit_rows, val_rows, params, on_epoch=report)
            value = result.history[result.best_epoch - 1].val_auc
            tr.log_metric("best_val_roc_auc", value)
            tr.set_tag("optuna.state", "complete")
        return value

    def callback(study: optuna.Study, frozen: optuna.trial.FrozenTrial) -> None:
        if on_trial is not None:
            value = frozen.value if frozen.value is not None else math.nan
            on_trial(frozen.number, value, frozen.state.name.lower())

    with tr.start_run(run_name=f"tune {data.window}") as parent:
        tr.set_tags(
            {
                "optuna.study": name,
                tr.TAG_TRAIN_WINDOW: data.window,
                tr.TAG_DATA_REV: data.data_rev,
                tr.TAG_FEATURE_SERVICE: data.feature_service,
            }
        )
        study.optimize(objective, n_trials=trials, callbacks=[callback], catch=())
        completed = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        if not completed:
            raise TrainingError(f"study {name} has no completed trial yet")
        best = study.best_trial
        best_params = {**base.to_dict(), **_params_of(best.params)}
        best_params.pop("device", None)
        tr.log_metric("best_val_roc_auc", float(best.value or math.nan))
        tr.log_json(best_params, "tuning/best_params.json")
    path = tuning_dir(settings) / "best_params.json"
    path.write_text(
        json.dumps(
            {
                "study": name,
                "window": data.window,
                "trial": best.number,
                "value": best.value,
                "params": best_params,
            },
            indent=2,
        )
    )
    pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials)
    logger.info("study %s: best val ROC AUC %.4f (trial %d)", name, best.value, best.number)
    return TuneResult(
        study_name=name,
        trials_run=trials,
        trials_total=len(study.trials),
        pruned=pruned,
        best_value=float(best.value or math.nan),
        best_params=best_params,
        best_params_path=path,
        run_id=parent.info.run_id,
    )


def len_trials(name: str, settings: Settings) -> int:
    """Trials a study already holds (0 for a new one): seeds a resumed sampler differently."""
    import optuna

    try:
        return len(optuna.load_study(study_name=name, storage=storage_url(settings)).trials)
    except KeyError:
        return 0


def _params_of(optuna_params: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in optuna_params.items() if k != "hidden"}
    if "hidden" in optuna_params:
        out["hidden_sizes"] = HIDDEN_CHOICES[optuna_params["hidden"]]
    return out
