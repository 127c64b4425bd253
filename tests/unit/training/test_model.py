"""Invariance and directional tests of the model and its preprocessing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from driftloop.errors import InvalidInputError
from driftloop.inference.preprocessing import Preprocessor
from driftloop.schema import MODEL_INPUT_COLUMNS
from driftloop.training.bundle import ModelBundle
from driftloop.training.trainer import TrainParams, fit


@pytest.fixture(scope="module")
def bundle(frame: pd.DataFrame) -> ModelBundle:
    result = fit(frame.iloc[:3500], frame.iloc[3500:], TrainParams(epochs=4, batch_size=256))
    return ModelBundle(result.model, result.preprocessor)


def test_probabilities_lie_in_unit_interval(bundle: ModelBundle, frame: pd.DataFrame) -> None:
    p = bundle.predict_proba(frame)
    assert p.shape == (len(frame),)
    assert p.dtype == np.float64
    assert np.all((p >= 0) & (p <= 1))


def test_a_row_alone_scores_as_in_a_batch(bundle: ModelBundle, frame: pd.DataFrame) -> None:
    batch = bundle.predict_proba(frame.iloc[:100])
    alone = np.array([bundle.predict_proba(frame.iloc[[i]])[0] for i in range(100)])
    np.testing.assert_allclose(alone, batch, atol=1e-6)


def test_unknown_category_goes_to_the_unknown_bucket(
    bundle: ModelBundle, frame: pd.DataFrame
) -> None:
    row = frame.iloc[[0]].copy()
    row["carrier"] = "ZZ-never-seen"
    row["dest"] = None
    codes, _ = bundle.preprocessor.transform(row)
    assert codes[0, 0] == 0
    assert codes[0, 2] == 0
    p = bundle.predict_proba(row)
    assert 0 <= p[0] <= 1


def test_missing_numerics_are_imputed_and_flagged(bundle: ModelBundle, frame: pd.DataFrame) -> None:
    row = frame.iloc[[0]][MODEL_INPUT_COLUMNS].astype(object)
    row["temp"] = None
    _, numeric = bundle.preprocessor.transform(row)
    n = len(bundle.preprocessor.numeric)
    j = bundle.preprocessor.numeric.index("temp")
    assert numeric[0, n + j] == 1.0
    assert np.isfinite(numeric).all()
    assert np.isfinite(bundle.predict_proba(row)).all()


def test_non_numeric_value_is_a_readable_error(bundle: ModelBundle, frame: pd.DataFrame) -> None:
    row = frame.iloc[[0]].copy().astype({"distance": object})
    row["distance"] = "far"
    with pytest.raises(InvalidInputError, match="distance"):
        bundle.predict_proba(row)


def test_higher_recent_late_rate_raises_the_probability(
    bundle: ModelBundle, frame: pd.DataFrame
) -> None:
    rows = frame.iloc[:200].copy()
    low, high = rows.copy(), rows.copy()
    low["late_rate_7d"], high["late_rate_7d"] = 0.05, 0.55
    assert (bundle.predict_proba(high) > bundle.predict_proba(low)).mean() > 0.95


def test_preprocessor_and_weights_round_trip(
    bundle: ModelBundle, frame: pd.DataFrame, tmp_path
) -> None:
    again = ModelBundle.load(bundle.save(tmp_path / "m"))
    np.testing.assert_array_equal(again.predict_proba(frame), bundle.predict_proba(frame))
    pre = Preprocessor.from_dict(bundle.preprocessor.to_dict())
    for a, b in zip(pre.transform(frame), bundle.preprocessor.transform(frame), strict=True):
        np.testing.assert_array_equal(a, b)


def test_extra_and_reordered_columns_do_not_matter(
    bundle: ModelBundle, frame: pd.DataFrame
) -> None:
    shuffled = frame.iloc[:50][list(reversed(frame.columns))].assign(extra=1)
    np.testing.assert_array_equal(
        bundle.predict_proba(shuffled), bundle.predict_proba(frame.iloc[:50])
    )


def test_missing_column_is_a_readable_error(bundle: ModelBundle, frame: pd.DataFrame) -> None:
    with pytest.raises(InvalidInputError, match="seats"):
        bundle.predict_proba(frame.drop(columns="seats"))


def test_columns_as_lists_score_exactly_as_the_dataframe(
    bundle: ModelBundle, frame: pd.DataFrame
) -> None:
    """Serving passes the request's columns (lists, None for missing) without a DataFrame."""
    rows = frame.iloc[:30][MODEL_INPUT_COLUMNS].astype(object)
    rows.iloc[3, rows.columns.get_loc("temp")] = None
    rows.iloc[4, rows.columns.get_loc("dest")] = None
    columns = {c: rows[c].tolist() for c in MODEL_INPUT_COLUMNS}
    np.testing.assert_array_equal(bundle.predict_proba(columns), bundle.predict_proba(rows))
    one = {c: v[:1] for c, v in columns.items()}
    np.testing.assert_array_equal(bundle.predict_proba(one), bundle.predict_proba(rows.iloc[:1]))
    ragged = {**columns, "seats": columns["seats"][:5]}
    with pytest.raises(InvalidInputError, match="differ in length"):
        bundle.predict_proba(ragged)
    with pytest.raises(InvalidInputError, match="distance"):
        bundle.predict_proba({**one, "distance": ["far"]})
