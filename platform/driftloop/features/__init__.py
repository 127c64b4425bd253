"""The feature store: the only package that imports feast (always lazily, inside functions).

Public API (names resolve on first use so that ``import driftloop.features`` stays light):

- :func:`build_training_frame` / :func:`training_frame_from_flights`: point-in-time training rows
- :func:`add_request_features`: dep_hour / day_of_week from request fields (serving reuses it)
- :class:`OnlineFeatures`: fast online lookup from an in-process snapshot
- :func:`online_features_sdk`: the plain Feast SDK path (slow; parity and comparison)
- :func:`parity` -> :class:`ParityReport`
- :func:`apply`, :func:`build_sources`, :func:`materialize`, :func:`feature_store`
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from driftloop.lazy_torch import defer_torch

defer_torch()  # before any feast import: feast would import torch eagerly (see the module)

if TYPE_CHECKING:  # static names for type checkers; at runtime they resolve lazily
    from driftloop.features.config import feature_store
    from driftloop.features.online import OnlineFeatures, OnlineLookup, online_features_sdk
    from driftloop.features.parity_check import ParityReport, parity
    from driftloop.features.repo import apply
    from driftloop.features.request import add_request_features
    from driftloop.features.store import (
        MaterializeResult,
        build_sources,
        build_tables,
        materialize,
    )
    from driftloop.features.training import (
        TRAINING_COLUMNS,
        build_training_frame,
        training_frame_from_flights,
    )

_EXPORTS = {
    "add_request_features": "driftloop.features.request",
    "build_training_frame": "driftloop.features.training",
    "training_frame_from_flights": "driftloop.features.training",
    "TRAINING_COLUMNS": "driftloop.features.training",
    "OnlineFeatures": "driftloop.features.online",
    "OnlineLookup": "driftloop.features.online",
    "online_features_sdk": "driftloop.features.online",
    "parity": "driftloop.features.parity_check",
    "ParityReport": "driftloop.features.parity_check",
    "apply": "driftloop.features.repo",
    "build_sources": "driftloop.features.store",
    "build_tables": "driftloop.features.store",
    "materialize": "driftloop.features.store",
    "MaterializeResult": "driftloop.features.store",
    "feature_store": "driftloop.features.config",
}

__all__ = [
    "TRAINING_COLUMNS",
    "MaterializeResult",
    "OnlineFeatures",
    "OnlineLookup",
    "ParityReport",
    "add_request_features",
    "apply",
    "build_sources",
    "build_tables",
    "build_training_frame",
    "feature_store",
    "materialize",
    "online_features_sdk",
    "parity",
    "training_frame_from_flights",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'driftloop.features' has no attribute {name!r}")
