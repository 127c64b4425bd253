"""A trained model with its preprocessing: saved to and loaded from one folder.

This is what every MLflow model version wraps (:mod:`driftloop.training.pyfunc`) and what the
evaluation scores; ``predict_proba`` is the vectorised fast path serving calls per request.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from driftloop.training.model import ModelConfig, TabularNet
from driftloop.training.preprocessing import Preprocessor, n_rows

WEIGHTS_FILE = "weights.pt"
META_FILE = "model.json"


@dataclass
class ModelBundle:
    net: TabularNet
    preprocessor: Preprocessor

    def predict_proba(self, df: pd.DataFrame | Mapping[str, Any]) -> np.ndarray:
        """P(late) for each row of ``df`` (MODEL_INPUT_COLUMNS; extra columns ignored): a
        DataFrame, or a mapping column -> list/array of equal lengths."""
        if n_rows(df) == 0:
            return np.empty(0, dtype=np.float64)
        codes, numeric = self.preprocessor.transform(df)
        return self.net.predict_proba(codes, numeric)

    def save(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        net = self.net.to("cpu")
        torch.save(net.state_dict(), folder / WEIGHTS_FILE)
        meta = {"config": net.config.to_dict(), "preprocessor": self.preprocessor.to_dict()}
        (folder / META_FILE).write_text(json.dumps(meta))
        return folder

    @classmethod
    def load(cls, folder: Path, device: str = "cpu") -> ModelBundle:
        meta = json.loads((Path(folder) / META_FILE).read_text())
        net = TabularNet(ModelConfig.from_dict(meta["config"]))
        state = torch.load(Path(folder) / WEIGHTS_FILE, map_location=device, weights_only=True)
        net.load_state_dict(state)
        net.to(device).eval()
        return cls(net=net, preprocessor=Preprocessor.from_dict(meta["preprocessor"]))
