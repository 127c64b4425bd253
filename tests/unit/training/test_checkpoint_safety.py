"""Checkpoints are data, never code: the trainer writes only what ``torch.load(...,
weights_only=True)`` accepts and resumes with ``weights_only=True``, so a checkpoint file that
carries a pickled object is refused instead of running it."""

from __future__ import annotations

import pickle
from pathlib import Path

import pandas as pd
import pytest
import torch

from driftloop.training.trainer import CHECKPOINT_FILE, TrainParams, fit

PARAMS = TrainParams(epochs=2, batch_size=256, seed=3)


class Payload:
    """Unpickling this would run code (``__reduce__``): a tampered checkpoint."""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("tampered checkpoint ran code",))


def test_checkpoint_loads_with_weights_only(frame: pd.DataFrame, tmp_path: Path) -> None:
    fit(frame.iloc[:3000], frame.iloc[3000:], PARAMS, checkpoint_dir=tmp_path)
    ckpt = torch.load(tmp_path / CHECKPOINT_FILE, weights_only=True)
    assert ckpt["epoch"] == 2
    assert isinstance(ckpt["rng"]["numpy"]["keys"], torch.Tensor)


def test_checkpoint_with_a_pickled_object_is_refused_on_resume(
    frame: pd.DataFrame, tmp_path: Path
) -> None:
    fit(frame.iloc[:3000], frame.iloc[3000:], PARAMS, checkpoint_dir=tmp_path)
    path = tmp_path / CHECKPOINT_FILE
    ckpt = torch.load(path, weights_only=True)
    ckpt["history"] = Payload()
    torch.save(ckpt, path)
    with pytest.raises(pickle.UnpicklingError):
        fit(frame.iloc[:3000], frame.iloc[3000:], PARAMS, checkpoint_dir=tmp_path, resume=True)
