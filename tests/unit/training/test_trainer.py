"""The trainer: determinism, resume after an interruption, divergence guard, bad input."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

from driftloop.errors import TrainingError
from driftloop.training.trainer import EpochStats, TrainParams, fit

PARAMS = TrainParams(epochs=4, batch_size=256, patience=10, seed=7)


class Interrupted(Exception):
    pass


def _weights_equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return all(torch.equal(sa[k], sb[k]) for k in sa)


def test_same_seed_gives_identical_weights(frame: pd.DataFrame) -> None:
    a = fit(frame.iloc[:3000], frame.iloc[3000:], PARAMS)
    b = fit(frame.iloc[:3000], frame.iloc[3000:], PARAMS)
    assert _weights_equal(a.model, b.model)
    assert [h.val_loss for h in a.history] == [h.val_loss for h in b.history]


def test_interrupted_run_resumes_to_the_same_result(frame: pd.DataFrame, tmp_path: Path) -> None:
    train, val = frame.iloc[:3000], frame.iloc[3000:]
    straight = fit(train, val, PARAMS, checkpoint_dir=tmp_path / "a")

    def crash_after_two(stats: EpochStats) -> None:
        if stats.epoch == 2:
            raise Interrupted  # the process dies right after epoch 2's checkpoint

    with pytest.raises(Interrupted):
        fit(train, val, PARAMS, checkpoint_dir=tmp_path / "b", on_epoch=crash_after_two)
    torch.manual_seed(999)  # a fresh process has other RNG state: the checkpoint restores it
    resumed = fit(train, val, PARAMS, checkpoint_dir=tmp_path / "b", resume=True)

    assert resumed.resumed_from == 2
    assert len(resumed.history) == len(straight.history) == 4
    assert [h.val_loss for h in resumed.history] == [h.val_loss for h in straight.history]
    assert [h.val_auc for h in resumed.history] == [h.val_auc for h in straight.history]
    assert _weights_equal(resumed.model, straight.model)


def test_resume_with_other_parameters_is_refused(frame: pd.DataFrame, tmp_path: Path) -> None:
    fit(frame.iloc[:3000], frame.iloc[3000:], TrainParams(epochs=1), checkpoint_dir=tmp_path)
    with pytest.raises(TrainingError, match="other parameters"):
        fit(
            frame.iloc[:3000],
            frame.iloc[3000:],
            TrainParams(epochs=1, learning_rate=0.1),
            checkpoint_dir=tmp_path,
            resume=True,
        )


def test_exploding_loss_fails_with_a_clear_error(frame: pd.DataFrame) -> None:
    wild = TrainParams(epochs=3, batch_size=256, learning_rate=1e6, max_loss=5.0)
    with pytest.raises(TrainingError, match="diverged"):
        fit(frame.iloc[:3000], frame.iloc[3000:], wild)


def test_early_stopping_keeps_the_best_epoch(frame: pd.DataFrame) -> None:
    result = fit(
        frame.iloc[:3000],
        frame.iloc[3000:],
        TrainParams(epochs=30, batch_size=256, learning_rate=3e-2, patience=1),
    )
    assert result.stopped_early
    best = min(h.val_loss for h in result.history)
    assert result.history[result.best_epoch - 1].val_loss == best


def test_empty_training_frame_is_refused(frame: pd.DataFrame) -> None:
    with pytest.raises(TrainingError, match="no rows"):
        fit(frame.iloc[:0], frame, PARAMS)


def test_cuda_requested_without_a_gpu_is_refused(
    frame: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # also on a GPU host
    with pytest.raises(TrainingError, match="cuda"):
        fit(frame.iloc[:3000], frame.iloc[3000:], TrainParams(epochs=1, device="cuda"))
