"""Test doubles shared by the serving unit tests (imported as a plain module: pytest puts this
folder on sys.path)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from driftloop.features.online import OnlineLookup
from driftloop.schema import FEATURE_COLUMNS, PLANE_FEATURES
from serving.examples import ROW

KNOWN_TAILNUM = "N14228"


class InMemoryFeatures:
    """A :class:`serving.features.FeatureSource`: every key has the example row's features,
    except planes other than N14228, which the store does not know (plane features null)."""

    def lookup(self, rows: Sequence[dict[str, Any]]) -> OnlineLookup:
        missing = [
            [] if r["tailnum"] == KNOWN_TAILNUM else [f"tailnum={r['tailnum']}"] for r in rows
        ]
        unknown = np.array([bool(m) for m in missing], dtype=bool)
        arrays: dict[str, np.ndarray] = {}
        for c in FEATURE_COLUMNS:
            column = np.array([ROW[c]] * len(rows), dtype=object if c == "plane_type" else float)
            if c in PLANE_FEATURES:
                column[unknown] = None if c == "plane_type" else np.nan
            arrays[c] = column
        return OnlineLookup(arrays, unknown.tolist(), missing)
