"""The NumPy runtime serving uses (driftloop.inference) computes what the torch model and
Captum compute: the same probabilities (to float32 rounding) and the same integrated-gradients
attributions, from the files a bundle saves; and it never needs torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from driftloop.inference.model import NUMPY_WEIGHTS_FILE, NumpyModel, bundle_folder
from driftloop.schema import CATEGORICAL_COLUMNS, MODEL_INPUT_COLUMNS
from driftloop.training.bundle import ModelBundle
from driftloop.training.explain import IntegratedGradientsExplainer


@pytest.fixture(scope="module")
def bundle(calibrated_bundle: ModelBundle) -> ModelBundle:
    return calibrated_bundle


@pytest.fixture(scope="module")
def saved(bundle: ModelBundle, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return bundle.save(tmp_path_factory.mktemp("bundle") / "bundle")


def _columns(rows: pd.DataFrame) -> dict[str, object]:
    """Request columns as serving's codec passes them (lists with None, float arrays)."""
    return {
        c: rows[c].astype(object).where(rows[c].notna(), None).tolist()
        if c in CATEGORICAL_COLUMNS
        else rows[c].to_numpy(dtype=np.float64)
        for c in MODEL_INPUT_COLUMNS
    }


@pytest.mark.parametrize("n", [1, 7, 1000])
def test_probabilities_equal_the_torch_model(
    bundle: ModelBundle, saved: Path, frame: pd.DataFrame, n: int
) -> None:
    model = NumpyModel.load(saved)
    rows = frame.iloc[:n][MODEL_INPUT_COLUMNS]
    expected = bundle.predict_proba(rows)
    got = model.predict_proba(rows)
    assert got.dtype == np.float64
    assert got.shape == (n,)
    np.testing.assert_allclose(got, expected, rtol=0, atol=2e-6)
    np.testing.assert_allclose(model.predict_proba(_columns(rows)), expected, rtol=0, atol=2e-6)


def test_unseen_and_missing_categories_score_as_the_torch_model(
    bundle: ModelBundle, saved: Path, frame: pd.DataFrame
) -> None:
    rows = frame.iloc[:4][MODEL_INPUT_COLUMNS].copy()
    rows["carrier"] = ["ZZ", None, "B6", "UA"]
    rows["pressure"] = [np.nan, 1.0, np.nan, 2.0]
    np.testing.assert_allclose(
        NumpyModel.load(saved).predict_proba(rows), bundle.predict_proba(rows), atol=2e-6
    )
    assert NumpyModel.load(saved).predict_proba(rows.iloc[:0]).shape == (0,)


@pytest.mark.parametrize("n_steps", [8, 50])
def test_attributions_equal_captums(
    bundle: ModelBundle, saved: Path, frame: pd.DataFrame, n_steps: int
) -> None:
    rows = frame.iloc[:200][MODEL_INPUT_COLUMNS]
    captum = IntegratedGradientsExplainer(bundle, n_steps).explain(rows)
    ours = NumpyModel.load(saved).explain(_columns(rows), n_steps)
    assert ours.features == captum.features == MODEL_INPUT_COLUMNS
    assert ours.n_steps == n_steps
    assert ours.baseline_probability == pytest.approx(captum.baseline_probability, abs=1e-9)
    np.testing.assert_allclose(ours.probability, captum.probability, atol=1e-9)
    np.testing.assert_allclose(ours.values, captum.values, atol=1e-9)
    # Captum sums the attributions of the embedding dimensions in its own order: the deltas
    # (a few thousandths) agree to ~1e-8
    np.testing.assert_allclose(ours.delta, captum.delta, atol=1e-7)


def test_a_large_request_is_integrated_in_chunks_with_the_same_result(
    saved: Path, frame: pd.DataFrame
) -> None:
    from driftloop.inference import attributions

    model = NumpyModel.load(saved)
    rows = _columns(frame.iloc[:400][MODEL_INPUT_COLUMNS])
    whole = model.explain(rows, 8)
    chunked = attributions.IntegratedGradients(model.net, model.preprocessor, model.calibration, 8)
    original = attributions.INTERNAL_BATCH
    attributions.INTERNAL_BATCH = 8 * 7  # 7 rows per chunk: 58 chunks, a ragged last one
    try:
        np.testing.assert_allclose(chunked.explain(rows).values, whole.values, atol=1e-12)
    finally:
        attributions.INTERNAL_BATCH = original


def test_weights_that_do_not_fit_the_preprocessing_are_refused(saved: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bundle"
    bad.mkdir()
    meta = json.loads((saved / "model.json").read_text())
    meta["preprocessor"]["vocab"]["carrier"].append("ZZ-not-trained")  # one row too many
    (bad / "model.json").write_text(json.dumps(meta))
    (bad / NUMPY_WEIGHTS_FILE).write_bytes((saved / NUMPY_WEIGHTS_FILE).read_bytes())
    with pytest.raises(ValueError, match="do not fit"):
        NumpyModel.load(bad)
    with np.load(saved / NUMPY_WEIGHTS_FILE) as arrays:
        state = {k: arrays[k] for k in arrays.files}
    state["mlp.9.weight"] = np.zeros((3, 3), np.float32)
    np.savez(bad / NUMPY_WEIGHTS_FILE, **state)
    meta["preprocessor"]["vocab"]["carrier"].pop()
    (bad / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="layer"):
        NumpyModel.load(bad)


def _bundle_with(
    saved: Path, folder: Path, meta_change: Any = None, state_change: Any = None
) -> Path:
    """A copy of the saved bundle with its model.json and/or weights changed."""
    folder.mkdir()
    meta = json.loads((saved / "model.json").read_text())
    if meta_change is not None:
        meta_change(meta)
    (folder / "model.json").write_text(json.dumps(meta))
    with np.load(saved / NUMPY_WEIGHTS_FILE) as arrays:
        state = {k: arrays[k] for k in arrays.files}
    if state_change is not None:
        state_change(state)
    np.savez(folder / NUMPY_WEIGHTS_FILE, **state)
    return folder


def _nan_bias(state: dict[str, np.ndarray]) -> None:
    state["mlp.0.bias"] = np.full_like(state["mlp.0.bias"], np.nan)


def _table_3d(state: dict[str, np.ndarray]) -> None:
    table = state["embeddings.0.weight"]
    state["embeddings.0.weight"] = np.stack([table, table], axis=2)


def _short_scaling(meta: dict[str, Any]) -> None:
    meta["preprocessor"]["stds"] = meta["preprocessor"]["stds"][:1]


def _repeated_category(meta: dict[str, Any]) -> None:
    vocab = meta["preprocessor"]["vocab"]["carrier"]
    vocab[-1] = vocab[0]


def _infinite_calibration(meta: dict[str, Any]) -> None:
    meta["calibration"]["slope"] = float("inf")


@pytest.mark.parametrize(
    ("meta_change", "state_change", "message"),
    [
        (None, _nan_bias, "NaN or inf"),
        (None, _table_3d, "2-D"),
        (_short_scaling, None, "scaling"),
        (_repeated_category, None, "repeats"),
        (_infinite_calibration, None, "calibration"),
    ],
    ids=["nan-weights", "3d-embedding", "short-scaling", "repeated-category", "inf-calibration"],
)
def test_a_bundle_that_cannot_score_is_refused_at_load(
    saved: Path, tmp_path: Path, meta_change: Any, state_change: Any, message: str
) -> None:
    """Each of these loaded before and then failed, or answered NaN, on every request."""
    bad = _bundle_with(saved, tmp_path / "bad", meta_change, state_change)
    with pytest.raises(ValueError, match=message):
        NumpyModel.load(bad)


def test_a_pyfunc_folder_without_numpy_weights_is_left_to_the_pyfunc(
    saved: Path, tmp_path: Path
) -> None:
    model_dir = tmp_path / "model"
    (model_dir / "artifacts" / "bundle").mkdir(parents=True)
    (model_dir / "MLmodel").write_text(
        "flavors:\n  python_function:\n    artifacts:\n      model:\n"
        "        path: artifacts/bundle\n"
    )
    (model_dir / "artifacts/bundle/model.json").write_bytes((saved / "model.json").read_bytes())
    assert bundle_folder(model_dir) == (model_dir / "artifacts/bundle").resolve()
    assert NumpyModel.from_model_dir(model_dir) is None  # saved before weights.npz existed
    (model_dir / "artifacts/bundle" / NUMPY_WEIGHTS_FILE).write_bytes(
        (saved / NUMPY_WEIGHTS_FILE).read_bytes()
    )
    assert isinstance(NumpyModel.from_model_dir(model_dir), NumpyModel)
    (model_dir / "MLmodel").write_text(  # a path out of the folder is not followed
        "flavors:\n  python_function:\n    artifacts:\n      model:\n        path: ../../x\n"
    )
    assert NumpyModel.from_model_dir(model_dir) is None
    (model_dir / "MLmodel").write_text("flavors: [not, a, mapping]\n")
    assert NumpyModel.from_model_dir(model_dir) is None


def test_the_runtime_loads_scores_and_explains_without_importing_torch(saved: Path) -> None:
    script = f"""
import sys
from pathlib import Path
from driftloop.inference.model import NumpyModel
from serving.examples import ROW
model = NumpyModel.load(Path({str(saved)!r}))
columns = {{k: [v] for k, v in ROW.items()}}
p = model.predict_proba(columns)
a = model.explain(columns, 8)
assert p.shape == (1,) and a.values.shape[0] == 1
loaded = sorted({{m.split('.')[0] for m in sys.modules}} & {{'torch', 'captum', 'mlflow'}})
print(loaded)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_a_bundle_in_memory_converts_to_the_runtime_serving_loads(
    bundle: ModelBundle, saved: Path, frame: pd.DataFrame
) -> None:
    rows = frame.iloc[:300][MODEL_INPUT_COLUMNS]
    in_memory = bundle.to_numpy().predict_proba(rows)
    np.testing.assert_array_equal(in_memory, NumpyModel.load(saved).predict_proba(rows))
