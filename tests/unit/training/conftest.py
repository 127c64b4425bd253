"""Synthetic training frames with a known signal (no data repo, no Feast: unit scope)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest

from driftloop.schema import CATEGORICAL_COLUMNS, EVENT_TIMESTAMP, LABEL, NUMERIC_COLUMNS

if TYPE_CHECKING:
    from driftloop.training.bundle import ModelBundle


def synthetic_frame(rows: int = 4000, seed: int = 0, signal: float = 2.5) -> pd.DataFrame:
    """Rows of MODEL_INPUT_COLUMNS where P(late) rises with late_rate_7d and carrier 'B6'."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "carrier": rng.choice(["UA", "B6", "EV", "DL"], rows),
            "origin": rng.choice(["EWR", "JFK", "LGA"], rows),
            "dest": rng.choice(["ATL", "ORD", "LAX", "BOS", "MIA"], rows),
            "plane_type": rng.choice(["Fixed wing multi engine", None], rows, p=[0.8, 0.2]),
        }
    )
    for col in NUMERIC_COLUMNS:
        df[col] = rng.normal(size=rows)
    df.loc[rng.random(rows) < 0.1, "pressure"] = np.nan
    df["late_rate_7d"] = rng.uniform(0, 0.6, rows)
    logit = -1.2 + signal * (df["late_rate_7d"] - 0.3) * 4 + 0.8 * (df["carrier"] == "B6")
    df[LABEL] = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype("int64")
    df[EVENT_TIMESTAMP] = pd.date_range("2013-01-01", periods=rows, freq="5min", tz="UTC")
    return df[[EVENT_TIMESTAMP, *CATEGORICAL_COLUMNS, *NUMERIC_COLUMNS, LABEL]]


@pytest.fixture(scope="session")
def frame() -> pd.DataFrame:
    return synthetic_frame()


@pytest.fixture(scope="session")
def calibrated_bundle(frame: pd.DataFrame) -> ModelBundle:
    """A model fitted on the synthetic frame and Platt-calibrated (not the identity), so the
    calibrated path is what attributions and the NumPy runtime are checked on."""
    from driftloop.training.bundle import ModelBundle
    from driftloop.training.trainer import TrainParams, fit

    result = fit(frame.iloc[:3500], frame.iloc[3500:], TrainParams(epochs=4, batch_size=256))
    calibrated = ModelBundle(result.model, result.preprocessor).calibrate(frame.iloc[3500:])
    assert not calibrated.calibration.is_identity
    return calibrated
