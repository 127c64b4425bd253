"""A small real pyfunc model for serving tests (MLflow "models from code": this file is logged
as the model, so the serving process loads it without importing the tests).

P(late) = sigmoid(bias + 0.002 * (distance - 1000) + 0.05 * (dep_hour - 12)) over
MODEL_INPUT_COLUMNS. ``model_config``: ``bias`` (float), ``kind`` = ``ok`` | ``raise`` (every
prediction raises) | ``slow`` (sleeps ``sleep_ms`` per call).
"""

from __future__ import annotations

import time
from typing import Any

import mlflow
import numpy as np
import pandas as pd


class FakeDelayModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context: Any) -> None:
        config = dict(context.model_config or {})
        self.bias = float(config.get("bias", -1.0))
        self.kind = str(config.get("kind", "ok"))
        self.sleep_s = float(config.get("sleep_ms", 0)) / 1e3

    def predict_proba(self, df: pd.DataFrame) -> np.ndarray:
        if self.kind == "raise":
            raise RuntimeError("broken challenger: this model always fails")
        if self.kind == "slow":
            time.sleep(self.sleep_s)
        distance = df["distance"].to_numpy(dtype=np.float64)
        hour = df["dep_hour"].to_numpy(dtype=np.float64)
        z = self.bias + 0.002 * (distance - 1000.0) + 0.05 * (hour - 12.0)
        return 1.0 / (1.0 + np.exp(-z))

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        return pd.DataFrame({"late_probability": self.predict_proba(model_input)})


mlflow.models.set_model(FakeDelayModel())
