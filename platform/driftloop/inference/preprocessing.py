"""Preprocessing fitted on the training window and saved with the model.

Categorical columns map to integer codes through a vocabulary fitted on the training rows; code
0 is the unknown bucket (unseen values and missing values). Numeric columns get median
imputation, a missing indicator each, and standard scaling. The fitted state is a small JSON
document (:meth:`Preprocessor.to_dict`) stored next to the weights of every model version.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from driftloop.errors import InvalidInputError
from driftloop.schema import CATEGORICAL_COLUMNS, NUMERIC_COLUMNS

#: Category values seen fewer times than this in training go to the unknown bucket.
MIN_CATEGORY_COUNT = 5
#: Below this many rows a dict lookup beats pandas' hash-table indexer (serving's single rows).
_SMALL_BATCH = 64


@dataclass
class Preprocessor:
    """Fitted preprocessing: vocabularies, imputation values and scaling."""

    categorical: list[str] = field(default_factory=lambda: list(CATEGORICAL_COLUMNS))
    numeric: list[str] = field(default_factory=lambda: list(NUMERIC_COLUMNS))
    vocab: dict[str, list[str]] = field(default_factory=dict)
    medians: list[float] = field(default_factory=list)
    means: list[float] = field(default_factory=list)
    stds: list[float] = field(default_factory=list)
    _lookup: dict[str, dict[str, int]] = field(default_factory=dict, repr=False)
    _index: dict[str, pd.Index] = field(default_factory=dict, repr=False)

    # ---- fitting -------------------------------------------------------------------------
    @classmethod
    def fit(cls, df: pd.DataFrame, min_count: int = MIN_CATEGORY_COUNT) -> Preprocessor:
        pre = cls()
        _require(df, pre.categorical + pre.numeric)
        for col in pre.categorical:
            counts = df[col].dropna().astype(str).value_counts()
            pre.vocab[col] = sorted(counts[counts >= min_count].index.tolist())
        raw = _numeric_matrix(df, pre.numeric, len(df))
        with np.errstate(all="ignore"):
            medians = np.nanmedian(raw, axis=0)
        medians = np.where(np.isnan(medians), 0.0, medians)
        filled = np.where(np.isnan(raw), medians, raw)
        stds = filled.std(axis=0)
        pre.medians = medians.tolist()
        pre.means = filled.mean(axis=0).tolist()
        pre.stds = np.where(stds < 1e-9, 1.0, stds).tolist()
        pre._build()
        return pre

    def _build(self) -> None:
        self._lookup = {c: {v: i + 1 for i, v in enumerate(vs)} for c, vs in self.vocab.items()}
        self._index = {c: pd.Index(vs, dtype=object) for c, vs in self.vocab.items()}
        self._median_arr = np.asarray(self.medians, dtype=np.float64)
        self._mean_arr = np.asarray(self.means, dtype=np.float64)
        self._std_arr = np.asarray(self.stds, dtype=np.float64)

    # ---- shape ---------------------------------------------------------------------------
    @property
    def cardinalities(self) -> list[int]:
        """Embedding rows per categorical column (vocabulary + the unknown bucket)."""
        return [len(self.vocab[c]) + 1 for c in self.categorical]

    @property
    def n_numeric(self) -> int:
        """Width of the numeric block: scaled values and their missing indicators."""
        return 2 * len(self.numeric)

    @property
    def feature_names(self) -> list[str]:
        return [*self.categorical, *self.numeric, *(f"{c}_missing" for c in self.numeric)]

    # ---- transform -----------------------------------------------------------------------
    def transform(self, df: pd.DataFrame | Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        """``(codes int64 [n, n_cat], numeric float32 [n, 2 * n_num])``; vectorised. ``df`` is
        a DataFrame or a mapping column -> list/array (no DataFrame needed on one row)."""
        _require(df, self.categorical + self.numeric)
        n = n_rows(df)
        codes = np.empty((n, len(self.categorical)), dtype=np.int64)
        for j, col in enumerate(self.categorical):
            codes[:, j] = self._codes(col, _values(df[col]))
        raw = _numeric_matrix(df, self.numeric, n)
        missing = np.isnan(raw)
        filled = np.where(missing, self._median_arr, raw)
        scaled = (filled - self._mean_arr) / self._std_arr
        numeric = np.concatenate([scaled, missing], axis=1).astype(np.float32)
        return codes, numeric

    def _codes(self, col: str, values: np.ndarray) -> np.ndarray:
        if len(values) <= _SMALL_BATCH:
            lookup = self._lookup[col]
            return np.fromiter(
                (lookup.get(v if isinstance(v, str) else str(v), 0) for v in values),
                dtype=np.int64,
                count=len(values),
            )
        if values.dtype != object:
            values = values.astype(str).astype(object)
        codes: np.ndarray = self._index[col].get_indexer(values) + 1  # -1 (unknown, missing) -> 0
        return codes

    # ---- persistence ---------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "categorical": self.categorical,
            "numeric": self.numeric,
            "vocab": self.vocab,
            "medians": self.medians,
            "means": self.means,
            "stds": self.stds,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Preprocessor:
        pre = cls(
            categorical=list(data["categorical"]),
            numeric=list(data["numeric"]),
            vocab={k: list(v) for k, v in data["vocab"].items()},
            medians=[float(x) for x in data["medians"]],
            means=[float(x) for x in data["means"]],
            stds=[float(x) for x in data["stds"]],
        )
        pre._build()
        return pre


def n_rows(df: pd.DataFrame | Mapping[str, Any]) -> int:
    """Rows of a DataFrame, or of a mapping column -> list/array (all of one length)."""
    if isinstance(df, pd.DataFrame):
        return len(df.index)
    lengths = {len(v) for v in df.values()}
    if len(lengths) > 1:
        raise InvalidInputError(f"model input columns differ in length: {sorted(lengths)}")
    return lengths.pop() if lengths else 0


def _values(column: Any) -> np.ndarray:
    if isinstance(column, pd.Series):
        values: np.ndarray = column.to_numpy()
        return values
    if isinstance(column, np.ndarray):
        return column
    return np.asarray(column, dtype=object)  # a list: keep None as None


def _require(df: pd.DataFrame | Mapping[str, Any], columns: list[str]) -> None:
    missing = [c for c in columns if c not in df]
    if missing:
        raise InvalidInputError(f"model input lacks columns {missing}")


def _as_float(column: Any, name: str) -> np.ndarray:
    values = _values(column)
    if isinstance(values.dtype, np.dtype) and values.dtype.kind in "fiub":
        return values
    try:
        return values.astype(np.float64)  # object columns with None -> NaN
    except (TypeError, ValueError):
        pass
    series = pd.Series(values, name=name)
    try:
        numbers = pd.to_numeric(series, errors="raise")
    except (TypeError, ValueError):
        raise InvalidInputError(
            f"model input {name!r} must hold numbers or null, got e.g. {series.dropna().iloc[0]!r}"
        ) from None
    out: np.ndarray = numbers.to_numpy(dtype=np.float64, na_value=np.nan)
    return out


def _numeric_matrix(df: pd.DataFrame | Mapping[str, Any], columns: list[str], n: int) -> np.ndarray:
    """``[n, len(columns)]`` float64 with NaN for missing; column by column (cheap on 1 row)."""
    out = np.empty((n, len(columns)), dtype=np.float64)
    for j, col in enumerate(columns):
        out[:, j] = _as_float(df[col], col)
    return out
