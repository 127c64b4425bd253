"""Training: torch tabular model, trainer, evaluation gate, MLflow pyfunc, tuning.

Public API (resolved lazily so ``import driftloop.training`` stays light)::

    train_and_register(start_month, end_month, settings=None, params=None, use_best_params=None,
                       resume=False, on_epoch=None, data=None, **param_overrides) -> TrainResult
    tune(start_month, end_month, trials, settings=None, study_name=None, ...) -> TuneResult
    reproduce(version, settings=None) -> ReproduceResult
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "train_and_register": "driftloop.training.pipeline",
    "TrainResult": "driftloop.training.pipeline",
    "resolve_params": "driftloop.training.pipeline",
    "TrainParams": "driftloop.training.trainer",
    "fit": "driftloop.training.trainer",
    "ModelBundle": "driftloop.training.bundle",
    "DelayModel": "driftloop.training.pyfunc",
    "load_training_data": "driftloop.training.inputs",
    "TrainingData": "driftloop.training.inputs",
    "tune": "driftloop.training.tuning",
    "TuneResult": "driftloop.training.tuning",
    "reproduce": "driftloop.training.reproduce",
    "ReproduceResult": "driftloop.training.reproduce",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'driftloop.training' has no attribute {name!r}")
