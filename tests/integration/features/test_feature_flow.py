"""The `features` flow end to end: real ingest (DVC) -> flow on a real Prefect server ->
build_training_frame and the online snapshot over what it materialized."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_features_flow_materializes_ingested_month(
    make_settings: Callable[..., Any], prefect_server: str
) -> None:
    from driftloop.data.ingest import ingest_months
    from driftloop.features import OnlineFeatures, build_training_frame, parity
    from flows.features import features

    settings = make_settings(prefect_url=prefect_server)
    ingest_months(["2013-02"], settings)
    summary = features(until=None, months=None)
    # Default until: end of the latest ingested month (local midnight starting March, in UTC).
    assert summary["until"] == "2013-03-01T05:00:00+00:00"
    assert sorted(summary["views"]) == ["carrier_origin_7d", "plane_attributes", "weather_hourly"]
    frame = build_training_frame(["2013-02"], settings)
    assert len(frame) > 20000
    assert frame["temp"].notna().mean() > 0.98
    assert parity(settings, sample=50).ok
    with OnlineFeatures(settings) as online:
        assert online.snapshot.size()["plane_attributes"] > 3000
