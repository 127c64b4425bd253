"""A trained model with its preprocessing and calibration: saved to and loaded from one folder.

This is what every MLflow model version wraps (:mod:`driftloop.training.pyfunc`) and what the
evaluation scores; ``predict_proba`` is the vectorised fast path serving calls per request and
returns calibrated probabilities (:mod:`driftloop.training.calibration`). A folder saved before
calibration existed loads with the identity calibration, so it scores as it always did.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from driftloop.inference.model import META_FILE, NUMPY_WEIGHTS_FILE, NumpyModel
from driftloop.inference.net import NumpyNet
from driftloop.inference.preprocessing import Preprocessor, n_rows
from driftloop.training.calibration import Calibration, fit_platt
from driftloop.training.model import ModelConfig, TabularNet
from driftloop.training.trainer import labels_of

WEIGHTS_FILE = "weights.pt"


@dataclass
class ModelBundle:
    net: TabularNet
    preprocessor: Preprocessor
    calibration: Calibration = field(default_factory=Calibration)

    def predict_proba(self, df: pd.DataFrame | Mapping[str, Any]) -> np.ndarray:
        """Calibrated P(late) for each row of ``df`` (MODEL_INPUT_COLUMNS; extra columns
        ignored): a DataFrame, or a mapping column -> list/array of equal lengths."""
        return self.calibration.apply(self.raw_proba(df))

    def raw_proba(self, df: pd.DataFrame | Mapping[str, Any]) -> np.ndarray:
        """The net's P(late) before calibration."""
        if n_rows(df) == 0:
            return np.empty(0, dtype=np.float64)
        codes, numeric = self.preprocessor.transform(df)
        return self.net.predict_proba(codes, numeric)

    def to_numpy(self) -> NumpyModel:
        """This bundle as serving runs it (:class:`~driftloop.inference.model.NumpyModel`: the
        same weights, preprocessing and calibration, without torch)."""
        net = NumpyNet.from_state(_arrays(self.net), self.preprocessor.n_numeric)
        return NumpyModel(net=net, preprocessor=self.preprocessor, calibration=self.calibration)

    def calibrate(self, rows: pd.DataFrame) -> ModelBundle:
        """A copy calibrated (Platt scaling) on the labelled ``rows``: the validation rows of
        the training window, never the holdout."""
        return replace(self, calibration=fit_platt(labels_of(rows), self.raw_proba(rows)))

    def save(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        net = self.net.to("cpu")
        torch.save(net.state_dict(), folder / WEIGHTS_FILE)
        # the same tensors for inference without torch (driftloop.inference.model): serving
        # reads these; the artifact hash covers both files
        np.savez(folder / NUMPY_WEIGHTS_FILE, allow_pickle=False, **_arrays(net))
        meta = {
            "config": net.config.to_dict(),
            "preprocessor": self.preprocessor.to_dict(),
            "calibration": self.calibration.to_dict(),
        }
        (folder / META_FILE).write_text(json.dumps(meta))
        return folder

    @classmethod
    def load(cls, folder: Path, device: str = "cpu") -> ModelBundle:
        meta = json.loads((Path(folder) / META_FILE).read_text())
        net = TabularNet(ModelConfig.from_dict(meta["config"]))
        state = torch.load(Path(folder) / WEIGHTS_FILE, map_location=device, weights_only=True)
        net.load_state_dict(state)
        net.to(device).eval()
        saved = meta.get("calibration")  # absent in folders saved before calibration existed
        return cls(
            net=net,
            preprocessor=Preprocessor.from_dict(meta["preprocessor"]),
            calibration=Calibration() if saved is None else Calibration.from_dict(saved),
        )


def _arrays(net: TabularNet) -> dict[str, np.ndarray]:
    """The net's ``state_dict`` as float32 NumPy arrays (what :class:`NumpyNet` reads)."""
    return {k: v.detach().float().cpu().numpy() for k, v in net.state_dict().items()}
