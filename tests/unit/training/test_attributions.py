"""Integrated-gradients attributions of a trained (calibrated) model: one per input feature and
row, summing to the probability's difference from the baseline's, led by the feature the
synthetic label depends on; the pyfunc's ``explain`` takes the request's columns as serving
passes them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from driftloop.schema import MODEL_INPUT_COLUMNS
from driftloop.training.bundle import ModelBundle
from driftloop.training.explain import IntegratedGradientsExplainer
from driftloop.training.pyfunc import DelayModel

#: Captum's convergence delta on these ReLU nets at 50 steps: a few thousandths
TOLERANCE = 0.01


@pytest.fixture(scope="module")
def bundle(calibrated_bundle: ModelBundle) -> ModelBundle:
    return calibrated_bundle


def test_one_attribution_per_feature_and_row_summing_to_prediction_minus_baseline(
    bundle: ModelBundle, frame: pd.DataFrame
) -> None:
    rows = frame.iloc[:300]
    explained = IntegratedGradientsExplainer(bundle).explain(rows)
    assert explained.features == MODEL_INPUT_COLUMNS
    assert explained.values.shape == (300, len(MODEL_INPUT_COLUMNS))
    served = bundle.predict_proba(rows)
    np.testing.assert_allclose(explained.probability, served, atol=1e-5)
    gap = served - explained.baseline_probability
    assert np.abs(explained.delta).max() <= TOLERANCE
    np.testing.assert_allclose(explained.values.sum(axis=1), gap, atol=TOLERANCE)
    np.testing.assert_allclose(explained.values.sum(axis=1) - explained.delta, gap, atol=1e-5)


def test_the_feature_the_label_depends_on_leads_the_attributions(
    bundle: ModelBundle, frame: pd.DataFrame
) -> None:
    explained = IntegratedGradientsExplainer(bundle).explain(frame.iloc[:500])
    mean_abs = np.abs(explained.values).mean(axis=0)
    ranked = [explained.features[j] for j in np.argsort(-mean_abs)]
    assert ranked[0] == "late_rate_7d"  # the synthetic frame's signal (tests conftest)
    assert "carrier" in ranked[:3]  # carrier B6 adds 0.8 to the logit


def test_more_steps_shrink_the_convergence_delta(bundle: ModelBundle, frame: pd.DataFrame) -> None:
    rows = frame.iloc[:200]
    coarse = IntegratedGradientsExplainer(bundle, n_steps=8).explain(rows)
    fine = IntegratedGradientsExplainer(bundle, n_steps=128).explain(rows)
    assert np.abs(fine.delta).mean() < np.abs(coarse.delta).mean()
    assert fine.n_steps == 128


def test_the_pyfunc_explains_the_request_columns_as_serving_passes_them(
    bundle: ModelBundle, frame: pd.DataFrame
) -> None:
    model = DelayModel()
    model._bundle = bundle
    rows = frame.iloc[:5][MODEL_INPUT_COLUMNS]
    columns = {
        c: rows[c].astype(object).where(rows[c].notna(), None).tolist()
        if c in ("carrier", "origin", "dest", "plane_type")
        else rows[c].to_numpy(dtype=np.float64)
        for c in MODEL_INPUT_COLUMNS
    }
    from_columns = model.explain(columns, 50)
    from_frame = model.explain(rows, 50)
    np.testing.assert_allclose(from_columns.values, from_frame.values, atol=1e-9)
    assert model.explain(rows, 50) is not None
    assert list(model._explainers) == [50]  # built once per step count


def test_predict_takes_a_frame_and_a_mapping_of_columns(
    bundle: ModelBundle, frame: pd.DataFrame
) -> None:
    """predict's DataFrame hint wraps no MLflow validation around it: a mapping still works."""
    model = DelayModel()
    model._bundle = bundle
    rows = frame.iloc[:5][MODEL_INPUT_COLUMNS].reset_index(drop=True)
    from_frame = model.predict(None, rows)
    from_mapping = model.predict(None, {c: rows[c].tolist() for c in MODEL_INPUT_COLUMNS})
    np.testing.assert_allclose(from_frame.to_numpy(), from_mapping.to_numpy(), atol=1e-9)
    np.testing.assert_allclose(from_frame.iloc[:, 0].to_numpy(), bundle.predict_proba(rows))
