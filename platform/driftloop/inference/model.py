"""A model version run by NumPy: preprocessing, the net, calibration, attributions.

:meth:`NumpyModel.from_model_dir` opens the local, hash-verified copy of a version's MLflow
model folder (:func:`driftloop.registry.integrity.load_verified_pyfunc` hands it over) and reads
the bundle its pyfunc names under ``artifacts: model``: ``model.json`` (architecture,
preprocessing, calibration) and ``weights.npz`` (the net's tensors, saved by
:meth:`driftloop.training.bundle.ModelBundle.save` beside torch's ``weights.pt``). Nothing is
unpickled (``allow_pickle=False``). A folder without ``weights.npz`` (versions trained before it
was saved) gives None, and the caller loads the pyfunc as before.

It offers what serving's fast path calls on a driftloop pyfunc (``predict_proba`` of a
DataFrame or of a mapping column -> values, ``explain``), with the same results: probabilities
equal torch's to float32 rounding, attributions equal Captum's (tests hold both).
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from driftloop.inference.attributions import DEFAULT_STEPS, Attributions, IntegratedGradients
from driftloop.inference.calibration import Calibration, sigmoid
from driftloop.inference.net import NumpyNet
from driftloop.inference.preprocessing import Preprocessor, n_rows
from driftloop.registry.integrity import load_verified_pyfunc
from driftloop.settings import Settings

META_FILE = "model.json"
NUMPY_WEIGHTS_FILE = "weights.npz"
#: the pyfunc artifact key of the bundle (:data:`driftloop.training.pyfunc.ARTIFACT_KEY`)
ARTIFACT_KEY = "model"


@dataclass
class NumpyModel:
    """A driftloop model version's bundle, run without torch."""

    net: NumpyNet
    preprocessor: Preprocessor
    calibration: Calibration
    _explainers: dict[int, IntegratedGradients] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    #: ``predict_proba`` takes a mapping column -> list/array (no DataFrame per request)
    accepts_columns = True

    def predict_proba(self, df: pd.DataFrame | Mapping[str, Any]) -> np.ndarray:
        """Calibrated P(late) per row (float64), as the pyfunc's ``predict_proba``."""
        if n_rows(df) == 0:
            return np.empty(0, dtype=np.float64)
        codes, numeric = self.preprocessor.transform(df)
        p = sigmoid(self.net.logits(codes, numeric))  # float32, as torch computes it
        return self.calibration.apply(p.astype(np.float64))

    def explain(
        self, df: pd.DataFrame | Mapping[str, Any], n_steps: int = DEFAULT_STEPS
    ) -> Attributions:
        """Integrated-gradients attributions of each row
        (:mod:`driftloop.inference.attributions`)."""
        explainer = self._explainers.get(n_steps)
        if explainer is None:
            with self._lock:
                explainer = self._explainers.get(n_steps)
                if explainer is None:
                    explainer = IntegratedGradients(
                        self.net, self.preprocessor, self.calibration, n_steps
                    )
                    self._explainers[n_steps] = explainer
        return explainer.explain(df)

    @classmethod
    def load(cls, folder: Path) -> NumpyModel:
        """The bundle saved in ``folder`` (``model.json`` and ``weights.npz``). ValueError when
        the files do not make a model that can score (shapes that do not fit each other, NaN or
        inf weights, scaling or calibration): such a version is refused at load, and is not
        run as its pyfunc instead."""
        meta = json.loads((folder / META_FILE).read_text())
        preprocessor = Preprocessor.from_dict(meta["preprocessor"])
        with np.load(folder / NUMPY_WEIGHTS_FILE, allow_pickle=False) as saved:
            state = {key: saved[key] for key in saved.files}
        net = NumpyNet.from_state(state, preprocessor.n_numeric)  # checks the layers' widths
        if [t.shape[0] for t in net.embeddings] != preprocessor.cardinalities:
            raise ValueError(f"weights in {folder} do not fit its preprocessing")
        stats = (preprocessor.medians, preprocessor.means, preprocessor.stds)
        if any(len(s) != len(preprocessor.numeric) for s in stats) or not all(
            np.isfinite(s).all() for s in stats
        ):
            raise ValueError(f"numeric scaling in {folder} does not fit its numeric columns")
        if any(len(set(v)) != len(v) for v in preprocessor.vocab.values()):
            raise ValueError(f"a vocabulary in {folder} repeats a category")
        saved_calibration = meta.get("calibration")
        calibration = (
            Calibration() if saved_calibration is None else Calibration.from_dict(saved_calibration)
        )
        if not (np.isfinite(calibration.slope) and np.isfinite(calibration.intercept)):
            raise ValueError(f"calibration in {folder} is not finite")
        return cls(net=net, preprocessor=preprocessor, calibration=calibration)

    @classmethod
    def from_model_dir(cls, model_dir: Path) -> NumpyModel | None:
        """The bundle of an MLflow pyfunc folder written by driftloop's training; None when the
        folder is not one, or was saved before ``weights.npz`` existed."""
        folder = bundle_folder(model_dir)
        if folder is None or not (folder / NUMPY_WEIGHTS_FILE).is_file():
            return None
        return cls.load(folder)


def bundle_folder(model_dir: Path) -> Path | None:
    """The folder the pyfunc of ``model_dir`` (its ``MLmodel``) names as artifact ``model``,
    when it holds a ``model.json``; None otherwise (or when the path leaves ``model_dir``)."""
    try:
        spec = yaml.safe_load((model_dir / "MLmodel").read_text())
        relative = spec["flavors"]["python_function"]["artifacts"][ARTIFACT_KEY]["path"]
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return None
    if not isinstance(relative, str):
        return None
    root = model_dir.resolve()
    folder = (root / relative).resolve()
    if not folder.is_relative_to(root) or not (folder / META_FILE).is_file():
        return None
    return folder


def load_verified(model_uri: str, settings: Settings | None = None) -> Any:
    """A registered version (or logged model) as serving runs it, from its hash-verified copy:
    its :class:`NumpyModel` when it saved ``weights.npz``, else its MLflow pyfunc (unpickled
    only after the hash matched)."""
    return load_verified_pyfunc(model_uri, settings, native=NumpyModel.from_model_dir)


def fast_scorer(model: Any) -> Any | None:
    """What scores ``model`` with ``predict_proba`` (probabilities, no schema enforcement): a
    :class:`NumpyModel` itself, or the unwrapped python model of a pyfunc that has one; None
    for any other pyfunc (its ``predict`` is the way)."""
    if isinstance(model, NumpyModel):
        return model
    inner: Any = None
    with contextlib.suppress(Exception):
        inner = model.unwrap_python_model()
    return inner if callable(getattr(inner, "predict_proba", None)) else None
