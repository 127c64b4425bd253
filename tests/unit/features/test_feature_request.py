"""Request-derived features (shared by training and serving)."""

from __future__ import annotations

import pandas as pd
import pytest

from driftloop.errors import InvalidInputError
from driftloop.features.request import add_request_features


def test_hour_and_weekday_are_new_york_local_time() -> None:
    df = pd.DataFrame(
        {"scheduled_departure": pd.to_datetime(["2013-01-01 10:15", "2013-07-01 03:30"], utc=True)}
    )
    out = add_request_features(df)
    # 10:15 UTC = 05:15 EST (Tuesday); 03:30 UTC on Jul 1 = 23:30 EDT on Sunday Jun 30.
    assert out["dep_hour"].tolist() == [5, 23]
    assert out["day_of_week"].tolist() == [1, 6]
    assert "dep_hour" not in df.columns


def test_iso_strings_with_offsets_and_naive_utc() -> None:
    df = pd.DataFrame(
        {"scheduled_departure": ["2013-01-01T05:15:00-05:00", "2013-01-01T10:15:00Z"]}
    )
    assert add_request_features(df)["dep_hour"].tolist() == [5, 5]
    naive = pd.DataFrame({"scheduled_departure": ["2013-01-01T10:15:00"]})
    assert add_request_features(naive)["dep_hour"].tolist() == [5]


def test_unparseable_departure_is_invalid_input() -> None:
    with pytest.raises(InvalidInputError, match="scheduled_departure"):
        add_request_features(pd.DataFrame({"scheduled_departure": ["tomorrow-ish"]}))
    with pytest.raises(InvalidInputError, match="scheduled_departure"):
        add_request_features(pd.DataFrame({"carrier": ["AA"]}))
