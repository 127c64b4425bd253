"""The records a training run passes between its steps (prepare -> fit -> evaluate -> register),
shared by :mod:`driftloop.training.pipeline` and :mod:`driftloop.training.evaluate_run`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from driftloop.training.bundle import ModelBundle
from driftloop.training.inputs import TrainingData
from driftloop.training.trainer import EpochStats, TrainParams


@dataclass
class TrainJob:
    """Resolved inputs of one run: data, parameters, where checkpoints go."""

    data: TrainingData
    params: TrainParams
    checkpoint_dir: Path
    run_name: str


@dataclass
class FittedRun:
    run_id: str
    model_uri: str
    bundle: ModelBundle
    history: list[EpochStats]
    device: str
    samples_per_s: float
    best_epoch: int
    resumed_from: int | None = None


@dataclass
class Evaluation:
    metrics: dict[str, dict[str, float]]
    decision_gate: str
    decision_reason: str
    champion_version: str | None
    slices: pd.DataFrame = field(repr=False, default_factory=pd.DataFrame)

    @property
    def alias(self) -> str | None:
        return None if self.decision_gate == "rejected" else self.decision_gate


@dataclass
class TrainResult:
    version: str
    run_id: str
    gate: str
    reason: str
    alias: str | None
    metrics: dict[str, dict[str, float]]
    params: dict[str, Any]
    history: list[EpochStats]
    compared_with: str
