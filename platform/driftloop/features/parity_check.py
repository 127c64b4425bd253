"""Online/offline parity: the online store serves what training would have seen.

For sampled entity keys of each feature view, the online value (``get_online_features``: the
latest materialized value) is compared with the offline value (Feast's historical retrieval at
the materialization timestamp ``until``). Numbers must agree within
``settings.features.parity_tolerance``; strings exactly; missing on both sides is equal.
Entities whose online value is older than the view's ttl at ``until`` are not comparable
(historical retrieval returns nothing past the ttl, the online store ignores ttl): they are
counted as ``stale`` and skipped.
"""

from __future__ import annotations

import logging
import math
import random
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pandas as pd

from driftloop.errors import NotFoundError
from driftloop.features.config import feature_store, quiet_offline_store, require_store
from driftloop.features.keys import online_entity_keys
from driftloop.features.online import VIEW_LAYOUT, read_view
from driftloop.features.repo import registered_view
from driftloop.features.store import materialized_until
from driftloop.schema import EVENT_TIMESTAMP
from driftloop.settings import Settings, get_settings

if TYPE_CHECKING:
    from feast import FeatureStore

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Mismatch:
    view: str
    entity: str
    feature: str
    online: Any
    offline: Any

    def __str__(self) -> str:
        return (
            f"{self.view} {self.entity} {self.feature}: "
            f"online={self.online!r} offline={self.offline!r}"
        )


@dataclass
class ParityReport:
    """Outcome of :func:`parity`; ``ok`` when no compared value differs."""

    until: dict[str, datetime] = field(default_factory=dict)
    entities: dict[str, int] = field(default_factory=dict)
    compared_values: int = 0
    stale: dict[str, int] = field(default_factory=dict)
    mismatches: list[Mismatch] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def summary(self, limit: int = 10) -> str:
        head = (
            f"parity {'OK' if self.ok else 'FAILED'}: {self.compared_values} values of "
            f"{sum(self.entities.values())} entities compared "
            f"({', '.join(f'{v}={n}' for v, n in self.entities.items())}), "
            f"{sum(self.stale.values())} stale skipped, {len(self.mismatches)} mismatches"
        )
        lines = [head, *(f"  {m}" for m in self.mismatches[:limit])]
        if len(self.mismatches) > limit:
            lines.append(f"  ... {len(self.mismatches) - limit} more")
        return "\n".join(lines)


def _is_missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _equal(a: Any, b: Any, tolerance: float) -> bool:
    a_missing, b_missing = _is_missing(a), _is_missing(b)
    if a_missing or b_missing:
        return a_missing and b_missing
    if isinstance(a, str) or isinstance(b, str):
        return bool(a == b)
    return abs(float(a) - float(b)) <= tolerance


def _offline(
    store: FeatureStore, view: str, rows: list[dict[str, Any]], until: datetime
) -> dict[tuple[Any, ...], dict[str, Any]]:
    join_keys, features = VIEW_LAYOUT[view]
    entity_df = pd.DataFrame(rows)
    entity_df[EVENT_TIMESTAMP] = pd.Timestamp(until).tz_convert("UTC")
    with quiet_offline_store():
        df = store.get_historical_features(
            entity_df=entity_df, features=[f"{view}:{f}" for f in features]
        ).to_df()
    out = {}
    for rec in df.to_dict("records"):
        out[tuple(rec[k] for k in join_keys)] = {f: rec[f] for f in features}
    return out


def parity(
    settings: Settings | None = None,
    sample: int | None = None,
    *,
    seed: int = 0,
    store: FeatureStore | None = None,
) -> ParityReport:
    """Compare online and offline values for up to ``sample`` entities per view (default
    ``settings.features.parity_sample``; 0 or less: all entities)."""
    settings = settings or get_settings()
    if store is None:
        require_store(settings)
        store = feature_store(settings)
    n = settings.features.parity_sample if sample is None else sample
    tolerance = settings.features.parity_tolerance
    rng = random.Random(seed)
    report = ParityReport()
    for view in VIEW_LAYOUT:
        fv = registered_view(store, view)
        until = materialized_until(store, view)
        keys = online_entity_keys(store, fv)
        if not keys:
            raise NotFoundError(f"online store has no rows of {view!r}: materialize first")
        keys.sort(key=lambda r: tuple(str(v) for v in r.values()))
        if 0 < n < len(keys):
            keys = rng.sample(keys, n)
        online, stamps = read_view(store, view, keys)
        offline = _offline(store, view, keys, until)
        report.until[view] = until
        report.entities[view] = 0
        report.stale[view] = 0
        _, features = VIEW_LAYOUT[view]
        for key, values in online.items():
            ts = stamps.get(key)
            if fv.ttl and fv.ttl.total_seconds() > 0 and ts is not None and ts < until - fv.ttl:
                report.stale[view] += 1
                continue
            report.entities[view] += 1
            entity = ",".join(VIEW_LAYOUT[view][0]) + "=" + ",".join(str(k) for k in key)
            off = offline.get(key, {})
            for feature, value in zip(features, values, strict=True):
                report.compared_values += 1
                expected = off.get(feature)
                if not _equal(value, expected, tolerance):
                    report.mismatches.append(Mismatch(view, entity, feature, value, expected))
    logger.info(report.summary().splitlines()[0])
    return report
