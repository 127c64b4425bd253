"""Online feature vectors for serving: a fast in-process snapshot, and the plain SDK path.

Semantics of :class:`OnlineFeatures` (the fast path):

- The snapshot is a copy of the online store: for every entity key present in each feature view,
  the latest materialized value (what ``get_online_features`` returns for it). It is read with
  one bulk SDK call per feature view at construction and on :meth:`OnlineFeatures.refresh`, and
  on a background interval when ``refresh_interval_s`` > 0.
- :meth:`OnlineFeatures.get` answers from the snapshot only (dict lookups, no I/O): values are
  those of the last refresh, so a lookup lags the online store by at most the refresh interval.
  A refresh swaps the whole snapshot at once; a lookup sees the old or the new one, never a mix.
- Like the SDK, the online path ignores ttl: a value stays served until it is overwritten.
- An entity key absent from the store yields NaN/None features and is reported in
  ``missing_entities`` (e.g. ``"tailnum=N123"``); serving decides to impute or reject.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from driftloop.errors import InvalidInputError
from driftloop.features.config import feature_store, repo_config_dict, require_store
from driftloop.features.keys import online_entity_keys
from driftloop.features.repo import registered_service, registered_view
from driftloop.features.request import normalize_features
from driftloop.schema import (
    CARRIER_ORIGIN_FEATURES,
    FEATURE_COLUMNS,
    PLANE_FEATURES,
    WEATHER_FEATURES,
)
from driftloop.settings import Settings, get_settings

if TYPE_CHECKING:
    from feast import FeatureStore

logger = logging.getLogger(__name__)

ENTITY_FIELDS = ("carrier", "origin", "tailnum")
#: Feature view -> (join keys, features); concatenated in this order they are FEATURE_COLUMNS.
VIEW_LAYOUT: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "weather_hourly": (("origin",), tuple(WEATHER_FEATURES)),
    "plane_attributes": (("tailnum",), tuple(PLANE_FEATURES)),
    "carrier_origin_7d": (("carrier", "origin"), tuple(CARRIER_ORIGIN_FEATURES)),
}
_STRING_FEATURES = {"plane_type"}


@dataclass(frozen=True)
class OnlineLookup:
    """Result of :meth:`OnlineFeatures.lookup`: one row per input row, in input order.

    ``arrays`` holds one numpy array per feature column (what serving uses: no DataFrame per
    request); ``features`` is the same as a DataFrame, built on first access."""

    arrays: dict[str, np.ndarray]
    missing: list[bool]
    missing_entities: list[list[str]]

    @cached_property
    def features(self) -> pd.DataFrame:
        return pd.DataFrame(self.arrays)


@dataclass(frozen=True)
class Snapshot:
    """Values per view: key tuple -> feature tuple; plus the value timestamps."""

    values: dict[str, dict[tuple[Any, ...], tuple[Any, ...]]]
    timestamps: dict[str, dict[tuple[Any, ...], datetime | None]]
    refreshed_at: float = field(default_factory=time.time)

    def size(self) -> dict[str, int]:
        return {view: len(v) for view, v in self.values.items()}


def _clean(value: Any, feature: str) -> Any:
    if feature in _STRING_FEATURES:
        return None if value is None or (isinstance(value, float) and math.isnan(value)) else value
    return float("nan") if value is None else float(value)


def read_view(
    store: FeatureStore, view: str, rows: list[dict[str, Any]]
) -> tuple[dict[tuple[Any, ...], tuple[Any, ...]], dict[tuple[Any, ...], datetime | None]]:
    """Online values of ``view`` for entity ``rows`` through the Feast SDK (one bulk call)."""
    join_keys, features = VIEW_LAYOUT[view]
    if not rows:
        return {}, {}
    refs = [f"{view}:{f}" for f in features]
    resp = store.get_online_features(features=refs, entity_rows=rows).to_dict(
        include_event_timestamps=True
    )
    values: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    stamps: dict[tuple[Any, ...], datetime | None] = {}
    for i in range(len(rows)):
        key = tuple(resp[k][i] for k in join_keys)
        vals = tuple(_clean(resp[f][i], f) for f in features)
        ts = max((resp[f"{f}__ts"][i] or 0) for f in features)
        if all(resp[f"{f}__ts"][i] in (None, 0) for f in features):
            continue  # nothing stored for this key
        values[key] = vals
        stamps[key] = datetime.fromtimestamp(ts, tz=UTC) if ts else None
    return values, stamps


def read_snapshot(store: FeatureStore) -> Snapshot:
    """Every entity's latest values in the online store (one bulk SDK call per view)."""
    values, stamps = {}, {}
    for view in VIEW_LAYOUT:
        fv = registered_view(store, view)
        rows = online_entity_keys(store, fv)
        values[view], stamps[view] = read_view(store, view, rows)
    return Snapshot(values=values, timestamps=stamps)


def _entity_columns(rows: pd.DataFrame | Sequence[dict[str, Any]]) -> list[list[Any]]:
    if isinstance(rows, pd.DataFrame):
        absent = [f for f in ENTITY_FIELDS if f not in rows.columns]
        if absent:
            raise InvalidInputError(f"rows lack the entity fields {absent}")
        return [[None if pd.isna(v) else v for v in rows[f].tolist()] for f in ENTITY_FIELDS]
    cols: list[list[Any]] = [[], [], []]
    for i, row in enumerate(rows):
        try:
            for j, f in enumerate(ENTITY_FIELDS):
                cols[j].append(row[f])
        except KeyError as err:
            raise InvalidInputError(f"row {i} lacks the entity field {err.args[0]!r}") from None
    return cols


class OnlineFeatures:
    """Fast online feature lookup from an in-process snapshot of the online store.

    ``OnlineFeatures(settings)`` reads the snapshot at once (needs feast: ~6 s import the first
    time, then ~0.5 s per refresh for the full data set). ``refresh_interval_s`` > 0 starts a
    daemon thread that refreshes on that interval; :meth:`close` stops it.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        refresh_interval_s: float = 0.0,
        store: FeatureStore | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        if store is None:
            require_store(self.settings)
            store = feature_store(self.settings)
        self._store = store
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._nan = {
            view: tuple(None if f in _STRING_FEATURES else float("nan") for f in feats)
            for view, (_, feats) in VIEW_LAYOUT.items()
        }
        self._marker = self._store_marker()
        self.snapshot = read_snapshot(self._store)
        self.skipped_refreshes = 0
        logger.info("online feature snapshot loaded: %s", self.snapshot.size())
        if refresh_interval_s > 0:
            self._thread = threading.Thread(
                target=self._loop, args=(refresh_interval_s,), name="feature-refresh", daemon=True
            )
            self._thread.start()

    def _store_marker(self) -> tuple[Any, ...] | None:
        """What changes when the store's content can have changed: size and mtime of the file
        registry (``materialize`` records its interval there) and of a SQLite online store.
        None when the store has no such files (Redis, a SQL registry): always re-read."""
        config = self._store.config
        files = [getattr(config.registry, "path", None)]
        online = config.online_store
        if getattr(online, "type", "") == "sqlite":
            files.append(getattr(online, "path", None))
        marker: list[Any] = []
        for name in files:
            if not isinstance(name, str) or "://" in name:
                return None
            path = self._store.repo_path / name if not name.startswith("/") else None
            try:
                st = (path or Path(name)).stat()
            except OSError:
                return None
            marker.append((st.st_mtime_ns, st.st_size))
        return tuple(marker)

    def refresh(self, *, if_changed: bool = False) -> Snapshot:
        """Re-read the online store and swap the snapshot; returns the current snapshot.

        ``if_changed`` keeps the snapshot when the store's files have not changed since the
        last read (the background loop uses it: a full re-read holds the GIL for ~0.5 s, which
        would show up in the serving tail latency for nothing)."""
        with self._lock:
            marker = self._store_marker()
            if if_changed and marker is not None and marker == self._marker:
                self.skipped_refreshes += 1
                return self.snapshot
            snap = read_snapshot(self._store)
            self.snapshot, self._marker = snap, marker
        logger.debug("online feature snapshot refreshed: %s", snap.size())
        return snap

    def _loop(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self.refresh(if_changed=True)
            except Exception:  # keep serving the old snapshot
                logger.exception("online feature refresh failed; keeping the previous snapshot")

    def close(self) -> None:
        """Stop the background refresh (if any)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> OnlineFeatures:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get(self, rows: pd.DataFrame | Sequence[dict[str, Any]]) -> pd.DataFrame:
        """Feature vectors (:data:`FEATURE_COLUMNS`) for rows with carrier, origin, tailnum.

        One row per input row (index aligned with ``rows`` when it is a DataFrame). Which rows
        had absent entities: ``df.attrs["missing"]`` (list of bool) and
        ``df.attrs["missing_entities"]`` (per row, e.g. ``["tailnum=N1"]``); :meth:`lookup`
        returns the same as an :class:`OnlineLookup`.
        """
        found = self.lookup(rows)
        df = found.features
        if isinstance(rows, pd.DataFrame):
            df.index = rows.index
        df.attrs["missing"] = found.missing
        df.attrs["missing_entities"] = found.missing_entities
        return df

    def lookup(self, rows: pd.DataFrame | Sequence[dict[str, Any]]) -> OnlineLookup:
        """Like :meth:`get`, as features (index 0..n-1) + missing mask + missing entities."""
        carriers, origins, tailnums = _entity_columns(rows)
        snap = self.snapshot
        weather = snap.values["weather_hourly"]
        planes = snap.values["plane_attributes"]
        aggs = snap.values["carrier_origin_7d"]
        nan_w = self._nan["weather_hourly"]
        nan_p = self._nan["plane_attributes"]
        nan_a = self._nan["carrier_origin_7d"]
        records = []
        missing: list[bool] = []
        missing_entities: list[list[str]] = []
        for carrier, origin, tailnum in zip(carriers, origins, tailnums, strict=True):
            w = weather.get((origin,))
            p = planes.get((tailnum,))
            a = aggs.get((carrier, origin))
            absent = []
            if w is None:
                w = nan_w
                absent.append(f"origin={origin}")
            if p is None:
                p = nan_p
                absent.append(f"tailnum={tailnum}")
            if a is None:
                a = nan_a
                absent.append(f"carrier,origin={carrier},{origin}")
            records.append(w + p + a)
            missing.append(bool(absent))
            missing_entities.append(absent)
        columns = list(zip(*records, strict=True)) if records else [()] * len(FEATURE_COLUMNS)
        data = {
            name: np.array(col, dtype=object if name in _STRING_FEATURES else np.float64)
            for name, col in zip(FEATURE_COLUMNS, columns, strict=True)
        }
        return OnlineLookup(data, missing, missing_entities)


_SDK_STORES: dict[str, FeatureStore] = {}


def online_features_sdk(
    rows: pd.DataFrame | Sequence[dict[str, Any]],
    settings: Settings | None = None,
    store: FeatureStore | None = None,
) -> pd.DataFrame:
    """The plain Feast SDK path: ``get_online_features(FeatureService, rows)`` per call.

    Same columns and dtypes as :meth:`OnlineFeatures.get` (missing values NaN/None). Slow per
    call (milliseconds); kept for parity checks and comparison.
    """
    settings = settings or get_settings()
    if store is None:
        cache_key = repr(repo_config_dict(settings))
        if cache_key not in _SDK_STORES:
            _SDK_STORES[cache_key] = feature_store(settings)
        store = _SDK_STORES[cache_key]
    carriers, origins, tailnums = _entity_columns(rows)
    entity_rows = [
        {"carrier": c, "origin": o, "tailnum": "" if t is None else t}
        for c, o, t in zip(carriers, origins, tailnums, strict=True)
    ]
    service = registered_service(store, settings)
    df = store.get_online_features(features=service, entity_rows=entity_rows).to_df()
    out = df[FEATURE_COLUMNS].reset_index(drop=True)
    return normalize_features(out)
