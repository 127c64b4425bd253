"""Training throughput as the trainer reports it (and the pipeline logs to MLflow as
``samples_per_s`` per epoch and ``mean_samples_per_s`` per run): every training row of an
epoch over that epoch's training-loop seconds, averaged over the epochs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from driftloop.training.trainer import EpochStats, TrainParams, fit


def test_samples_per_s_is_the_epoch_rows_over_the_epoch_seconds(frame: pd.DataFrame) -> None:
    train, val = frame.iloc[:3000], frame.iloc[3000:]
    seen: list[EpochStats] = []
    result = fit(
        train, val, TrainParams(epochs=3, batch_size=512, patience=10), on_epoch=seen.append
    )

    assert [h.epoch for h in seen] == [1, 2, 3]
    for stats in result.history:
        assert stats.seconds > 0
        # every training row once per epoch (the last batch is short): rows / training seconds
        assert stats.samples_per_s * stats.seconds == pytest.approx(len(train), rel=1e-9)
    assert result.samples_per_s == pytest.approx(np.mean([h.samples_per_s for h in seen]))
    assert result.device == "cpu"
