"""The MLflow pyfunc of a driftloop model version.

``mlflow.pyfunc.load_model(uri).predict(df)`` returns a DataFrame with column
``late_probability``; ``load_model(uri).unwrap_python_model().predict_proba(df)`` is the fast path
(a float64 array, no schema enforcement) that serving uses. The model loads once, in
``load_context``.

The decision threshold (``is_late`` when P(late) >= it) is chosen on the holdout *after* the
artifact is logged and its content hash recorded (:mod:`driftloop.registry.integrity`), so it is
not inside the artifact: it is stored with the registered version (tag
``driftloop.threshold``). :func:`load_python_model` of a version gives the loaded model that
threshold (``threshold``, ``threshold_source``); serving reads the same tag.
"""

from __future__ import annotations

import importlib.metadata
import logging
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import mlflow
import numpy as np
import pandas as pd
from mlflow.pyfunc.model import PythonModel

from driftloop.inference.attributions import DEFAULT_STEPS, Attributions
from driftloop.inference.model import ARTIFACT_KEY, fast_scorer, load_verified
from driftloop.registry.client import (
    DEFAULT_THRESHOLD,
    THRESHOLD_DEFAULT,
    decision_threshold,
    get_version,
)
from driftloop.registry.integrity import load_verified_pyfunc
from driftloop.schema import CATEGORICAL_COLUMNS, MODEL_INPUT_COLUMNS, NUMERIC_COLUMNS
from driftloop.schema import OUTPUT_PROBABILITY as PROBA
from driftloop.settings import Settings
from driftloop.training.bundle import ModelBundle
from driftloop.training.explain import IntegratedGradientsExplainer

logger = logging.getLogger(__name__)

#: Numeric inputs that are always whole numbers (derived from the scheduled departure).
INTEGER_COLUMNS = ("dep_hour", "day_of_week")
#: Distributions a model environment needs (pinned to what trained it).
_REQUIREMENTS = ["torch", "pandas", "numpy", "scikit-learn", "mlflow"]


class DelayModel(PythonModel):
    """P(arrival delay > 15 min) for rows of MODEL_INPUT_COLUMNS."""

    #: is_late when P(late) >= threshold: the registered version's (set by load_python_model),
    #: else the default of versions registered without one (class attributes: models pickled
    #: before they existed have them too)
    threshold: float = DEFAULT_THRESHOLD
    threshold_source: str = THRESHOLD_DEFAULT

    def __init__(self) -> None:
        self._bundle: ModelBundle | None = None
        self._explainers: dict[int, IntegratedGradientsExplainer] = {}  # by n_steps

    def load_context(self, context: Any) -> None:
        self._bundle = ModelBundle.load(Path(context.artifacts[ARTIFACT_KEY]))

    @property
    def bundle(self) -> ModelBundle:
        if self._bundle is None:
            raise RuntimeError("DelayModel used before load_context")
        return self._bundle

    #: ``predict_proba`` also takes a mapping column -> list/array (serving passes the request's
    #: columns without building a DataFrame per request)
    accepts_columns = True

    def predict_proba(self, df: pd.DataFrame | Mapping[str, Any]) -> np.ndarray:
        """Fast path: probabilities as a float64 array (vectorised, torch.inference_mode)."""
        return self.bundle.predict_proba(df)

    def explain(
        self, df: pd.DataFrame | Mapping[str, Any], n_steps: int = DEFAULT_STEPS
    ) -> Attributions:
        """Per-feature attributions of each row's probability (integrated gradients against
        the version's baseline, :mod:`driftloop.training.explain`); the explainer is built on
        the first call (models pickled before it existed explain too)."""
        explainers: dict[int, IntegratedGradientsExplainer] | None = getattr(
            self, "_explainers", None
        )
        if explainers is None:  # pickled before the attribute existed
            explainers = self._explainers = {}
        explainer = explainers.get(n_steps)
        if explainer is None:
            explainer = explainers[n_steps] = IntegratedGradientsExplainer(self.bundle, n_steps)
        return explainer.explain(df)

    def decide(self, df: pd.DataFrame | Mapping[str, Any]) -> np.ndarray:
        """``is_late`` (0/1, int64) at this model's decision threshold."""
        return (self.predict_proba(df) >= self.threshold).astype(np.int64)

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        # pd.DataFrame is a hint MLflow derives no signature from and wraps no validation
        # around (the logged signature stays ours); without a hint it warns at import, the
        # first line `make demo` printed. Mappings are accepted too.
        df = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        return pd.DataFrame({PROBA: self.predict_proba(df)}, index=df.index)


def signature() -> Any:
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    inputs: list[Any] = [ColSpec("string", c, required=False) for c in CATEGORICAL_COLUMNS]
    inputs += [
        ColSpec("long" if c in INTEGER_COLUMNS else "double", c, required=False)
        for c in NUMERIC_COLUMNS
    ]
    return ModelSignature(inputs=Schema(inputs), outputs=Schema([ColSpec("double", PROBA)]))


def pip_requirements() -> list[str]:
    out = []
    for dist in _REQUIREMENTS:
        try:
            version = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out.append(dist)
            continue
        out.append(f"{dist}=={version.split('+')[0]}")
    return out


def input_example(df: pd.DataFrame, rows: int = 5) -> pd.DataFrame:
    """A multi-row example in signature types (numerics as float, categoricals as str/None)."""
    ex = df[MODEL_INPUT_COLUMNS].head(rows).copy()
    for col in NUMERIC_COLUMNS:
        dtype = "int64" if col in INTEGER_COLUMNS else "float64"
        ex[col] = pd.to_numeric(ex[col], errors="coerce").astype(dtype)
    for col in CATEGORICAL_COLUMNS:
        ex[col] = ex[col].astype(object).where(ex[col].notna(), None)
    return ex.reset_index(drop=True)


def log_model(bundle: ModelBundle, example: pd.DataFrame, name: str = "model") -> Any:
    """Log ``bundle`` as a pyfunc in the active MLflow run; returns the ModelInfo."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = bundle.save(Path(tmp) / "bundle")
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=DelayModel(),
            artifacts={ARTIFACT_KEY: str(folder)},
            signature=signature(),
            input_example=input_example(example),
            pip_requirements=pip_requirements(),
        )


def load_serving_model(model_uri: str, settings: Settings | None = None) -> Any:
    """What serving runs for ``model_uri`` (:func:`serving.handles.load_handle` loads the same
    way): its :class:`~driftloop.inference.model.NumpyModel` when the version saved
    ``weights.npz``, else the unwrapped :class:`DelayModel` (torch); both have
    ``predict_proba``."""
    scorer = fast_scorer(load_verified(model_uri, settings))
    if scorer is None:
        raise TypeError(f"{model_uri} is not a driftloop model (no predict_proba)")
    return scorer


def load_python_model(model_uri: str, settings: Settings | None = None) -> DelayModel:
    """Load a version (``models:/name/version``) or a training run's logged model
    (``models:/m-...``) from a local copy whose content hash matched the one its run recorded
    (:mod:`driftloop.registry.integrity`), and return its unwrapped :class:`DelayModel`. A
    version's model gets the version's decision threshold (tag ``driftloop.threshold``); a
    logged model, not yet registered, keeps the default."""
    model = load_verified_pyfunc(model_uri, settings)
    python_model = model.unwrap_python_model()
    if not hasattr(python_model, "predict_proba"):
        raise TypeError(f"{model_uri} is not a driftloop model (no predict_proba)")
    loaded = cast("DelayModel", python_model)
    rest = model_uri.removeprefix("models:/")
    name, _, version = rest.partition("/")
    if model_uri.startswith("models:/") and not rest.startswith("m-") and version.isdigit():
        info = get_version(version, settings, name)
        loaded.threshold, loaded.threshold_source = decision_threshold(info)
    return loaded
