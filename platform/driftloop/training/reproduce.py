"""Reproduce a model version: retrain from its recorded data revision (partitions read through
DVC at that revision, features rebuilt point in time) with its recorded parameters, evaluate on
the same holdout month, and report the metric differences. The reproduction is an MLflow run
tagged ``driftloop.reproduces``; it is not registered and moves no alias."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from driftloop.errors import TrainingError
from driftloop.registry import client as registry
from driftloop.registry import tracking as tr
from driftloop.settings import Settings, get_settings
from driftloop.training.inputs import load_training_data
from driftloop.training.job import TrainJob
from driftloop.training.lineage import resolve_version
from driftloop.training.pipeline import checkpoint_dir, evaluate, fit_and_log, params_from_run
from driftloop.training.trainer import EpochCallback

logger = logging.getLogger(__name__)

COMPARED = ("roc_auc", "log_loss", "brier", "ece", "precision", "recall")


@dataclass
class ReproduceResult:
    version: str
    original_run_id: str
    run_id: str
    data_rev: str
    train_window: str
    #: metric -> (recorded, reproduced, reproduced - recorded)
    differences: dict[str, tuple[float, float, float]]

    def max_abs_difference(self) -> float:
        diffs = [abs(d) for _, _, d in self.differences.values() if not math.isnan(d)]
        return max(diffs) if diffs else math.nan


def reproduce(
    ref: str, settings: Settings | None = None, on_epoch: EpochCallback | None = None
) -> ReproduceResult:
    """Retrain version ``ref`` (``3``, ``name:3``, ``name@champion``) from its lineage."""
    settings = settings or get_settings()
    info = resolve_version(ref, settings)
    tags = info.tags
    run_id = tags.get(tr.TAG_RUN_ID) or info.run_id
    if not run_id:
        raise TrainingError(f"version {info.version} records no training run")
    for key in (tr.TAG_DATA_REV, tr.TAG_TRAIN_WINDOW):
        if key not in tags:
            raise TrainingError(f"version {info.version} lacks lineage tag {key}")
    run_params, _, recorded = registry.get_run_data(run_id, settings)
    params = params_from_run(run_params, settings)
    start, _, end = tags[tr.TAG_TRAIN_WINDOW].partition("..")
    data = load_training_data(start, end, settings, rev=tags[tr.TAG_DATA_REV])
    recorded_hashes = tags.get(tr.TAG_DATA_HASHES)
    if recorded_hashes:
        import json

        if json.loads(recorded_hashes) != data.data_hashes:
            raise TrainingError(
                f"partitions at data revision {tags[tr.TAG_DATA_REV][:10]} do not match the "
                f"hashes version {info.version} recorded"
            )
    job = TrainJob(
        data=data,
        params=params,
        checkpoint_dir=checkpoint_dir(settings, data, params) / "reproduce",
        run_name=f"reproduce v{info.version}",
    )
    fitted = fit_and_log(job, settings, on_epoch=on_epoch)
    evaluation = evaluate(job, fitted, settings)
    with tr.start_run(run_id=fitted.run_id):
        tr.set_tags({"driftloop.reproduces": info.version, "driftloop.original_run": run_id})
    differences: dict[str, tuple[float, float, float]] = {}
    for name in COMPARED:
        before = float(recorded.get(f"holdout_model_{name}", math.nan))
        after = float(evaluation.metrics["model"].get(name, math.nan))
        differences[name] = (before, after, after - before)
    return ReproduceResult(
        version=info.version,
        original_run_id=run_id,
        run_id=fitted.run_id,
        data_rev=data.data_rev,
        train_window=data.window,
        differences=differences,
    )
