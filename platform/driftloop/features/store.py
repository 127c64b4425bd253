"""Build the offline sources from ingested partitions and materialize the online store.

Thin wrappers: the tables come from :mod:`driftloop.features.pipeline` (pure functions), the
partitions from :mod:`driftloop.data`, the objects from the feature repo (:mod:`.repo`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import pandas as pd

from driftloop.data.store import available_months, load_partitions
from driftloop.errors import InvalidInputError, NotFoundError
from driftloop.features import pipeline
from driftloop.features.config import feature_store, quiet_offline_store
from driftloop.features.repo import VIEWS, apply, load_definitions, source_path, write_sources
from driftloop.months import next_month
from driftloop.schema import LOCAL_TZ
from driftloop.settings import Settings, get_settings

if TYPE_CHECKING:
    from feast import FeatureStore

logger = logging.getLogger(__name__)

#: Start of every materialization window (sources hold nothing older).
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

PartitionKind = Literal["flights", "weather", "planes"]
#: ``loader(kind, months, settings)`` -> partition frame (driftloop.data.store.load_partitions).
Loader = Callable[[PartitionKind, "list[str] | None", Settings], pd.DataFrame]


def _data_loader(kind: PartitionKind, months: list[str] | None, settings: Settings) -> pd.DataFrame:
    return load_partitions(kind, months, settings=settings)


def ingested_months(settings: Settings) -> list[str]:
    """Months ingested by driftloop.data; NotFoundError when there are none."""
    months = available_months(settings=settings)
    if not months:
        raise NotFoundError("no ingested data: run `driftloop ingest` first")
    return sorted(months)


def month_end(month: str) -> datetime:
    """End of ``month``: the local (New York) midnight that starts the next month, in UTC."""
    start = pd.Timestamp(f"{next_month(month)}-01").tz_localize(LOCAL_TZ).tz_convert("UTC")
    end: datetime = start.to_pydatetime()
    return end


def parse_until(value: str | datetime | None, settings: Settings | None = None) -> datetime:
    """A tz-aware UTC materialization end. ISO strings; naive values are UTC. ``None`` is the
    end of the latest ingested month (:func:`month_end`)."""
    if value is None:
        return month_end(ingested_months(settings or get_settings())[-1])
    if isinstance(value, datetime):
        ts = pd.Timestamp(value)
    else:
        try:
            ts = pd.Timestamp(str(value).strip())
        except ValueError:
            ts = pd.NaT
        if ts is pd.NaT or pd.isna(ts):
            raise InvalidInputError(
                f"cannot parse --until {value!r}: expected an ISO time such as 2013-03-31T23:00"
            )
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    out: datetime = ts.to_pydatetime()
    return out


def plane_stamp(settings: Settings) -> pd.Timestamp:
    """When plane attributes count as known: local midnight starting the data set's first month."""
    return pd.Timestamp(f"{settings.data.first_month}-01").tz_localize(LOCAL_TZ).tz_convert("UTC")


def build_tables(
    flights: pd.DataFrame, weather: pd.DataFrame, planes: pd.DataFrame, settings: Settings
) -> dict[str, pd.DataFrame]:
    """All source tables of the repo from partition frames (keys of :data:`repo.VIEWS`)."""
    return {
        "weather": pipeline.build_weather_features(weather),
        "plane": pipeline.build_plane_features(planes, plane_stamp(settings)),
        "carrier_origin": pipeline.build_carrier_origin_features(flights),
    }


def build_sources(
    months: list[str] | None = None,
    settings: Settings | None = None,
    loader: Loader | None = None,
) -> dict[str, Path]:
    """Read partitions of ``months`` (default: all ingested) and write the offline sources."""
    settings = settings or get_settings()
    load = loader or _data_loader
    if months is None and loader is None:
        months = ingested_months(settings)
    frames = {kind: load(kind, months, settings) for kind in ("flights", "weather", "planes")}
    if frames["flights"].empty:
        raise NotFoundError(f"no flights in the ingested partitions for months {months}")
    tables = build_tables(frames["flights"], frames["weather"], frames["planes"], settings)
    return write_sources(tables, settings)


def require_sources(settings: Settings) -> None:
    """NotFoundError naming the first missing offline source table."""
    objects = load_definitions(settings)
    for table in VIEWS:
        path = source_path(objects, settings, table)
        if not path.exists():
            raise NotFoundError(
                f"feature source {path} is missing: run the `features` flow or "
                "`driftloop features materialize` after ingest"
            )


@dataclass(frozen=True)
class MaterializeResult:
    until: datetime
    seconds: float
    views: list[str]


def materialize(
    until: str | datetime | None = None,
    settings: Settings | None = None,
    store: FeatureStore | None = None,
) -> MaterializeResult:
    """Load the latest value per entity with ``event_timestamp <= until`` into the online store."""
    settings = settings or get_settings()
    end = parse_until(until, settings)
    require_sources(settings)
    store = store or feature_store(settings)
    views = [v.name for v in store.list_feature_views()]
    if sorted(views) != sorted(VIEWS.values()):
        apply(settings, store)
        views = [v.name for v in store.list_feature_views()]
    t0 = time.perf_counter()
    with quiet_offline_store():
        store.materialize(start_date=EPOCH, end_date=end, feature_views=views)
    seconds = time.perf_counter() - t0
    logger.info("materialized %s up to %s in %.1f s", views, end.isoformat(), seconds)
    return MaterializeResult(until=end, seconds=seconds, views=views)


def materialized_until(store: FeatureStore, view: str) -> datetime:
    """End of the latest materialization of ``view``; NotFoundError when never materialized."""
    fv = store.get_feature_view(view)
    if not fv.materialization_intervals:
        raise NotFoundError(
            f"feature view {view!r} was never materialized: run `driftloop features materialize`"
        )
    end = fv.materialization_intervals[-1][1]
    return end.replace(tzinfo=UTC) if end.tzinfo is None else end.astimezone(UTC)
