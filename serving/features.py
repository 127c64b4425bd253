"""Online features for flight-mode requests: a thin wrapper over
:class:`driftloop.features.online.OnlineFeatures` (the only code that knows Feast). Serving
calls one interface, :class:`FeatureSource`: ``source.lookup(rows) -> OnlineLookup`` with one
array per :data:`driftloop.schema.FEATURE_COLUMNS` column in row order (null where the store has
no value) and the absent entity keys of each row.

An entity is *missing* when the online store holds no row for its key.
``settings.serving.missing_entity_policy`` decides: ``reject`` answers 404 naming the first
missing entity; ``impute`` (default) predicts with the features null, which the model imputes
exactly as it does for flights whose plane is unknown in training data.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

from driftloop.errors import DriftloopError, NotFoundError, ServiceUnavailableError
from driftloop.features.online import OnlineFeatures, OnlineLookup
from driftloop.schema import FEATURE_COLUMNS
from driftloop.settings import Settings

logger = logging.getLogger(__name__)


class FeatureSource(Protocol):
    """What serving needs of an online store (:class:`driftloop.features.OnlineFeatures`)."""

    def lookup(self, rows: Sequence[dict[str, Any]]) -> OnlineLookup:
        """Features of ``rows`` (dicts with carrier, origin, tailnum), in row order."""
        ...


class FeatureLookup:
    """Fetch features for request rows and apply the missing-entity policy."""

    def __init__(self, settings: Settings, source: FeatureSource | None = None) -> None:
        self.settings = settings
        self.policy = settings.serving.missing_entity_policy
        self._source = source
        self._error: str | None = None
        self._lock = threading.Lock()

    def _build(self) -> FeatureSource:
        return OnlineFeatures(
            self.settings, refresh_interval_s=self.settings.features.online_refresh_s
        )

    def warm(self, before_ready: Callable[[], None] | None = None) -> None:
        """Open the online store now (blocking; startup runs it in a thread). ``before_ready``
        runs once the store is open, before lookups may use it."""
        with self._lock:
            if self._source is not None:
                return
            try:
                source = self._build()
                if before_ready is not None:
                    before_ready()
                self._source = source
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
        rows = [
            {"carrier": c, "origin": o, "tailnum": t}
            for c, o, t in zip(
                entities["carrier"], entities["origin"], entities["tailnum"], strict=True
            )
        ]
        try:
            result = source.lookup(rows)
        except DriftloopError:
            raise
        except Exception as exc:
            raise ServiceUnavailableError(
                f"online feature lookup failed: {type(exc).__name__}: {exc}"
            ) from None
        n = len(rows)
        arrays = result.arrays
        out = {c: arrays[c] if c in arrays else np.full(n, np.nan) for c in FEATURE_COLUMNS}
        if self.policy == "reject":
            for i, absent in enumerate(result.missing_entities):
                if absent:
                    raise NotFoundError(
                        f"{', '.join(absent)} (row {i}) not in the online store "
                        "(missing_entity_policy=reject)"
                    )
        return out
