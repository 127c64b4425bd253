"""Point-in-time-correct training frames from Feast's historical retrieval.

Each flight is an entity row stamped at its scheduled departure; Feast's offline store (DuckDB
over the parquet sources) joins, per feature view, the latest row with
``event_timestamp <= scheduled_departure`` within the view's ttl. Nothing stamped after a
flight's departure reaches its row; the daily aggregates are stamped so that they only contain
outcomes known before their stamp (see :mod:`driftloop.features.pipeline`).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

import pandas as pd

from driftloop.data.store import load_partitions
from driftloop.errors import NotFoundError
from driftloop.features.config import feature_store, quiet_offline_store
from driftloop.features.repo import registered_service
from driftloop.features.request import (
    add_request_features,
    normalize_features,
    scheduled_departure_utc,
)
from driftloop.features.store import require_sources
from driftloop.schema import (
    EVENT_TIMESTAMP,
    FEATURE_COLUMNS,
    FLIGHT_KEY,
    LABEL,
    MODEL_INPUT_COLUMNS,
)
from driftloop.settings import Settings, get_settings

if TYPE_CHECKING:
    from feast import FeatureStore

logger = logging.getLogger(__name__)

TRAINING_COLUMNS = [FLIGHT_KEY, EVENT_TIMESTAMP, *MODEL_INPUT_COLUMNS, LABEL, "tailnum"]
#: Entity join keys that identify a flight's features (absent tailnum -> "" -> no plane row).
_ENTITY_COLUMNS = ["carrier", "origin", "tailnum"]


def training_frame_from_flights(
    flights: pd.DataFrame,
    settings: Settings | None = None,
    store: FeatureStore | None = None,
) -> pd.DataFrame:
    """Training rows for ``flights`` (driftloop.data's flights shape); cancelled ones dropped.

    Columns: :data:`TRAINING_COLUMNS`, sorted by event timestamp then flight id.
    """
    settings = settings or get_settings()
    store = store or feature_store(settings)
    flights = flights[flights[LABEL].notna()]
    if flights.empty:
        raise NotFoundError("no flights with a known outcome to build a training frame from")
    if flights[FLIGHT_KEY].duplicated().any():
        dup = flights.loc[flights[FLIGHT_KEY].duplicated(), FLIGHT_KEY].iloc[0]
        raise NotFoundError(f"duplicate flight_id {dup!r} in the flights partitions")
    flights = flights.reset_index(drop=True)
    departure = scheduled_departure_utc(flights["scheduled_departure"])
    base = pd.DataFrame(
        {
            FLIGHT_KEY: flights[FLIGHT_KEY].astype(str).values,
            EVENT_TIMESTAMP: departure,
            "scheduled_departure": departure,
            "carrier": flights["carrier"].astype(str).values,
            "origin": flights["origin"].astype(str).values,
            "dest": flights["dest"].astype(str).values,
            "distance": pd.to_numeric(flights["distance"]).astype("float64").values,
            "tailnum": flights["tailnum"].astype(object).values,
            LABEL: pd.to_numeric(flights[LABEL]).astype("int64").values,
        }
    )
    entity_df = base[[FLIGHT_KEY, EVENT_TIMESTAMP, *_ENTITY_COLUMNS]].copy()
    entity_df["tailnum"] = entity_df["tailnum"].where(entity_df["tailnum"].notna(), "")
    service = registered_service(store, settings)
    t0 = time.perf_counter()
    with quiet_offline_store():
        features = store.get_historical_features(entity_df=entity_df, features=service).to_df()
    logger.info(
        "historical features for %d flights in %.1f s", len(entity_df), time.perf_counter() - t0
    )
    features = features[[FLIGHT_KEY, *FEATURE_COLUMNS]]
    if len(features) != len(entity_df) or features[FLIGHT_KEY].duplicated().any():
        raise NotFoundError(
            f"historical retrieval returned {len(features)} rows for {len(entity_df)} flights"
        )
    out = base.merge(features, on=FLIGHT_KEY, how="left", validate="one_to_one")
    out = add_request_features(out)
    normalize_features(out)
    out = out.sort_values([EVENT_TIMESTAMP, FLIGHT_KEY]).reset_index(drop=True)
    return out[TRAINING_COLUMNS]


def build_training_frame(months: list[str], settings: Settings | None = None) -> pd.DataFrame:
    """Point-in-time-correct training rows for the flights of ``months`` (ingested partitions).

    Columns: flight_id, event_timestamp (= scheduled departure, UTC), the model inputs of
    :data:`driftloop.schema.MODEL_INPUT_COLUMNS`, is_late (cancelled flights dropped), tailnum.
    The feature sources must have been built (``features`` flow) and the repo applied.
    """
    settings = settings or get_settings()
    require_sources(settings)
    flights = load_partitions("flights", months, settings=settings)
    return training_frame_from_flights(flights, settings)
