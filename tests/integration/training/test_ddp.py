"""torchrun with 2 CPU processes (gloo) trains and both ranks end with identical weights."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from driftloop.schema import CATEGORICAL_COLUMNS, EVENT_TIMESTAMP, LABEL, NUMERIC_COLUMNS

pytestmark = pytest.mark.integration


def _frame(rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    df = pd.DataFrame({c: rng.choice(["a", "b", "c"], rows) for c in CATEGORICAL_COLUMNS})
    for col in NUMERIC_COLUMNS:
        df[col] = rng.normal(size=rows)
    logit = 2.0 * df["late_rate_7d"] + 1.0 * (df["carrier"] == "a")
    df[LABEL] = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype("int64")
    df[EVENT_TIMESTAMP] = pd.date_range("2013-01-01", periods=rows, freq="5min", tz="UTC")
    return df


def test_two_rank_ddp_ends_with_identical_weights(tmp_path: Path) -> None:
    from driftloop.embedded.services import free_port
    from driftloop.settings import QUIET_ENV

    _frame(4000).to_parquet(tmp_path / "frame.parquet")
    out = tmp_path / "out"
    torchrun = Path(sys.executable).with_name("torchrun")
    proc = subprocess.run(
        [
            str(torchrun),
            "--nproc_per_node",
            "2",
            "--master_addr",
            "127.0.0.1",
            "--master_port",
            str(free_port()),
            "-m",
            "driftloop.training.ddp",
            "--frame",
            str(tmp_path / "frame.parquet"),
            "--out",
            str(out),
            "--epochs",
            "2",
            "--batch-size",
            "256",
            "--device",
            "cpu",
        ],
        env={**os.environ, **QUIET_ENV, "DRIFTLOOP_STATE_DIR": str(tmp_path / "state")},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rank0 = torch.load(out / "rank0.pt", weights_only=True)
    rank1 = torch.load(out / "rank1.pt", weights_only=True)
    assert rank0.keys() == rank1.keys()
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)
    assert (out / "model" / "weights.pt").exists()
    history = json.loads((out / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2]
    assert history[-1]["val_auc"] > 0.6  # the shards together learned the planted signal
