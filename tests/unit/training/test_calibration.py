"""Platt scaling on the validation rows, and the calibration a model bundle saves and serves."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from driftloop.schema import LABEL
from driftloop.stats import roc_auc
from driftloop.training.bundle import META_FILE, ModelBundle
from driftloop.training.calibration import Calibration, ece, fit_platt, log_loss
from driftloop.training.trainer import TrainParams, fit


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-z))


def _logit(q: np.ndarray) -> np.ndarray:
    return np.log(q) - np.log1p(-q)


def _overconfident_labels(q: np.ndarray, seed: int) -> np.ndarray:
    """Labels whose true probability is sigmoid(2 * logit(q)): ``q`` is under-confident."""
    rng = np.random.default_rng(seed)
    return (rng.random(len(q)) < _sigmoid(2 * _logit(q))).astype(np.float64)


def _scores(rows: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0.02, 0.98, rows)


def test_platt_recovers_the_miscalibration_and_lowers_ece_and_log_loss() -> None:
    q = _scores(20_000, seed=0)
    y = _overconfident_labels(q, seed=1)
    cal = fit_platt(y, q)
    assert cal.method == "platt"
    assert cal.slope == pytest.approx(2.0, abs=0.15)
    assert cal.intercept == pytest.approx(0.0, abs=0.1)
    assert cal.rows == len(q)
    assert cal.ece_after < cal.ece_before / 3
    assert cal.log_loss_after < cal.log_loss_before
    # ... and on rows it was not fitted on.
    q_new = _scores(20_000, seed=2)
    y_new = _overconfident_labels(q_new, seed=3)
    assert ece(y_new, cal.apply(q_new)) < ece(y_new, q_new) / 3
    assert log_loss(y_new, cal.apply(q_new)) < log_loss(y_new, q_new)


def test_calibration_is_monotone_and_keeps_the_auc() -> None:
    q = _scores(5_000, seed=4)
    y = _overconfident_labels(q, seed=5)
    cal = fit_platt(y, q)
    p = cal.apply(q)
    order = np.argsort(q)
    assert np.all(np.diff(p[order]) >= 0)
    assert np.all((p > 0) & (p < 1))
    assert roc_auc(y, p) == pytest.approx(roc_auc(y, q), abs=1e-12)


def test_one_class_validation_rows_give_the_identity() -> None:
    q = _scores(100, seed=6)
    cal = fit_platt(np.zeros(100), q)
    assert (cal.slope, cal.intercept) == (1.0, 0.0)
    assert cal.method.startswith("identity")
    assert "one class" in cal.method
    assert cal.apply(q) is q


def test_identity_when_platt_does_not_help() -> None:
    # Scores 0.25 and 0.75 whose rows are late exactly 25 % and 75 % of the time, in either
    # half of the rows: already calibrated, nothing to gain.
    p = np.repeat([0.25, 0.75], 8)
    y = np.array([1, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 1, 1, 1], dtype=np.float64)
    cal = fit_platt(y, p)
    assert cal.method == "identity (platt did not help)"
    assert (cal.slope, cal.intercept) == (1.0, 0.0)
    assert cal.log_loss_after == cal.log_loss_before
    assert cal.ece_before == pytest.approx(0.0)


def test_a_reversed_ranking_is_not_flipped() -> None:
    """Scores that rank the wrong way round would need a negative slope: never applied."""
    q = _scores(2_000, seed=7)
    y = _overconfident_labels(1 - q, seed=8)
    cal = fit_platt(y, q)
    assert (cal.slope, cal.intercept) == (1.0, 0.0)
    assert "not positive" in cal.method


def test_separable_validation_rows_give_a_finite_calibration() -> None:
    p = np.array([0.1, 0.2, 0.3, 0.6, 0.7, 0.8])
    y = np.array([0, 0, 0, 1, 1, 1], dtype=np.float64)
    cal = fit_platt(y, p)
    assert np.isfinite([cal.slope, cal.intercept]).all()
    assert np.isfinite(cal.apply(p)).all()
    assert cal.log_loss_after < cal.log_loss_before


def test_calibration_record_round_trips_through_json() -> None:
    cal = fit_platt(_overconfident_labels(_scores(1_000, 9), 10), _scores(1_000, 9))
    assert Calibration.from_dict(json.loads(json.dumps(cal.to_dict()))) == cal
    identity = Calibration.from_dict(json.loads(json.dumps(Calibration().to_dict())))
    assert identity.is_identity
    assert np.isnan(identity.ece_before)


# ---- the model bundle -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def bundle(frame: pd.DataFrame) -> ModelBundle:
    result = fit(frame.iloc[:3000], frame.iloc[3000:], TrainParams(epochs=2, batch_size=256))
    return ModelBundle(result.model, result.preprocessor)


@pytest.fixture(scope="module")
def calibrated(bundle: ModelBundle) -> ModelBundle:
    return replace(
        bundle,
        calibration=Calibration(
            slope=1.7,
            intercept=-0.3,
            method="platt",
            rows=1000,
            ece_before=0.08,
            ece_after=0.01,
            log_loss_before=0.6,
            log_loss_after=0.55,
        ),
    )


def test_bundle_serves_calibrated_probabilities(
    calibrated: ModelBundle, frame: pd.DataFrame
) -> None:
    raw = calibrated.raw_proba(frame)
    served = calibrated.predict_proba(frame)
    np.testing.assert_allclose(served, calibrated.calibration.apply(raw))
    assert not np.allclose(served, raw)
    assert served.dtype == np.float64
    assert calibrated.predict_proba(frame.iloc[:0]).shape == (0,)


def test_saved_bundle_keeps_its_calibration(
    calibrated: ModelBundle, frame: pd.DataFrame, tmp_path: Path
) -> None:
    again = ModelBundle.load(calibrated.save(tmp_path / "m"))
    assert again.calibration == calibrated.calibration
    np.testing.assert_array_equal(again.predict_proba(frame), calibrated.predict_proba(frame))


def test_bundle_saved_before_calibration_loads_as_identity(
    calibrated: ModelBundle, frame: pd.DataFrame, tmp_path: Path
) -> None:
    folder = calibrated.save(tmp_path / "old")
    meta = json.loads((folder / META_FILE).read_text())
    old = {"config": meta["config"], "preprocessor": meta["preprocessor"]}
    (folder / META_FILE).write_text(json.dumps(old))
    loaded = ModelBundle.load(folder)
    assert loaded.calibration.is_identity
    np.testing.assert_array_equal(loaded.predict_proba(frame), calibrated.raw_proba(frame))


def test_calibrate_fits_on_the_given_rows(bundle: ModelBundle, frame: pd.DataFrame) -> None:
    """Labels drawn from an over-confident version of the net's own probabilities: calibrating
    on them must sharpen the probabilities and lower ECE and log loss on those rows."""
    rows = pd.concat([frame] * 3, ignore_index=True)
    raw = bundle.raw_proba(rows)
    rows[LABEL] = _overconfident_labels(raw, seed=11).astype("int64")
    out = bundle.calibrate(rows)
    assert bundle.calibration.is_identity  # the original is left alone
    cal = out.calibration
    assert cal.method == "platt"
    assert cal.rows == len(rows)
    assert cal.slope == pytest.approx(2.0, abs=0.3)
    assert cal.ece_after < cal.ece_before
    assert cal.log_loss_after < cal.log_loss_before
    np.testing.assert_allclose(out.predict_proba(rows), cal.apply(raw))
