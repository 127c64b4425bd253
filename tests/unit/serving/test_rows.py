"""The fast request-feature path of serving equals driftloop.features.add_request_features."""

from __future__ import annotations

import pandas as pd
import pytest

from driftloop.errors import InvalidInputError
from driftloop.features.request import add_request_features
from serving.rows import departures

VALUES = [
    "2013-01-01T05:15:00-05:00",
    "2013-01-01T10:15:00Z",
    "2013-01-01T10:15:00",  # naive = UTC
    "2013-03-10T06:59:00+00:00",  # before the DST switch in New York
    "2013-03-10T07:01:00+00:00",  # after it
    "2013-11-03T05:30:00+00:00",  # the repeated hour in autumn
    "2013-12-31T23:59:59.500000+00:00",
    "2013-07-04 17:00:00-04:00",
]


def test_fast_departures_match_the_pandas_derivation() -> None:
    utc, hours, days = departures(VALUES)
    expected = add_request_features(pd.DataFrame({"scheduled_departure": VALUES}))
    assert hours.tolist() == expected["dep_hour"].astype(float).tolist()
    assert days.tolist() == expected["day_of_week"].astype(float).tolist()
    assert [str(pd.Timestamp(t)) for t in utc][:2] == [
        "2013-01-01 10:15:00+00:00",
        "2013-01-01 10:15:00+00:00",
    ]


def test_unparseable_departure_falls_back_to_the_pandas_error() -> None:
    with pytest.raises(InvalidInputError, match="scheduled_departure"):
        departures(["tomorrow morning"])
