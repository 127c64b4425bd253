"""Online features for flight-mode requests: a thin wrapper over
:class:`driftloop.features.OnlineFeatures` (the only code that knows Feast), so serving adapts
to one call shape: ``source.get(rows) -> DataFrame`` aligned with ``rows`` holding
:data:`driftloop.schema.FEATURE_COLUMNS` (null where the store has no value).

An entity is *missing* when every feature of its view is null for a row (the online store holds
no row for that key). ``settings.serving.missing_entity_policy`` decides: ``reject`` answers 404
naming the first missing entity; ``impute`` (default) predicts with the features null, which the
model imputes exactly as it does for flights whose plane is unknown in training data.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Protocol

import numpy as np
import pandas as pd

from driftloop.errors import DriftloopError, NotFoundError, ServiceUnavailableError
from driftloop.schema import (
    CARRIER_ORIGIN_FEATURES,
    ENTITY_KEYS,
    FEATURE_COLUMNS,
    PLANE_FEATURES,
    WEATHER_FEATURES,
)
from driftloop.settings import Settings

logger = logging.getLogger(__name__)

#: Feature columns of each entity (keys of :data:`driftloop.schema.ENTITY_KEYS`).
ENTITY_FEATURES = {
    "weather": WEATHER_FEATURES,
    "plane": PLANE_FEATURES,
    "carrier_origin": CARRIER_ORIGIN_FEATURES,
}


class FeatureSource(Protocol):
    """``get(rows)`` -> DataFrame of FEATURE_COLUMNS aligned with ``rows``; absent keys per row
    in ``attrs["missing_entities"]`` when known. OnlineFeatures also has ``lookup(rows)``
    (used when present: it skips building an input DataFrame)."""

    def get(self, rows: pd.DataFrame) -> pd.DataFrame: ...


class FeatureLookup:
    """Fetch features for request rows and apply the missing-entity policy."""

    def __init__(self, settings: Settings, source: FeatureSource | None = None) -> None:
        self.settings = settings
        self.policy = settings.serving.missing_entity_policy
        self._source = source
        self._error: str | None = None
        self._lock = threading.Lock()

    def _build(self) -> FeatureSource:
        from driftloop.features import OnlineFeatures

        return OnlineFeatures(
            self.settings, refresh_interval_s=self.settings.features.online_refresh_s
        )

    def warm(self) -> None:
        """Open the online store now (blocking; startup runs it in a thread)."""
        with self._lock:
            if self._source is not None:
                return
            try:
                self._source = self._build()
                self._error = None
                logger.info("online feature store ready")
            except Exception as exc:
                error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
                level = logging.DEBUG if error == self._error else logging.WARNING
                logger.log(level, "online feature store unavailable: %s", error)
                self._error = error

    @property
    def ready(self) -> bool:
        return self._source is not None

    def lookup(self, entities: dict[str, list[Any]]) -> dict[str, np.ndarray]:
        """FEATURE_COLUMNS (arrays in row order) for entity columns carrier, origin, tailnum."""
        source = self._source
        if source is None:  # never opened on the request path: startup warms it
            raise ServiceUnavailableError(
                f"online feature store unavailable ({self._error or 'still opening'}); send "
                "complete feature rows (parameters.content_type='features') or materialize "
                "the store"
            )
        try:
            if hasattr(source, "lookup"):  # OnlineFeatures: no DataFrame in, one out
                rows = [
                    {"carrier": c, "origin": o, "tailnum": t}
                    for c, o, t in zip(
                        entities["carrier"], entities["origin"], entities["tailnum"], strict=True
                    )
                ]
                result = source.lookup(rows)
                arrays, named = result.arrays, result.missing_entities
            else:
                found = source.get(pd.DataFrame(entities))
                arrays = {c: found[c].to_numpy() for c in found.columns}
                named = found.attrs.get("missing_entities")
        except DriftloopError:
            raise
        except Exception as exc:
            raise ServiceUnavailableError(
                f"online feature lookup failed: {type(exc).__name__}: {exc}"
            ) from None
        n = len(entities["carrier"])
        out = {c: arrays[c] if c in arrays else np.full(n, np.nan) for c in FEATURE_COLUMNS}
        if self.policy == "reject":
            self._reject_missing(entities, out, named)
        return out

    @staticmethod
    def _reject_missing(
        entities: dict[str, list[Any]],
        features: dict[str, np.ndarray],
        named: list[list[str]] | None,
    ) -> None:
        if named is not None:  # OnlineFeatures names the absent keys per row
            for i, absent in enumerate(named):
                if absent:
                    raise NotFoundError(
                        f"{', '.join(absent)} (row {i}) not in the online store "
                        "(missing_entity_policy=reject)"
                    )
            return
        for entity, cols in ENTITY_FEATURES.items():
            absent_rows = pd.DataFrame({c: features[c] for c in cols}).isna().all(axis=1)
            if absent_rows.any():
                i = int(absent_rows.to_numpy().argmax())
                keys = {k: entities[k][i] for k in ENTITY_KEYS[entity]}
                raise NotFoundError(
                    f"entity {entity} {keys} (row {i}) is not in the online store "
                    "(missing_entity_policy=reject)"
                )
