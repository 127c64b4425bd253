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


def test_the_pandas_path_matches_the_fast_path() -> None:
    many = VALUES * 10  # above FAST_ROWS: the pandas parser
    utc, hours, days = departures(many)
    fast_utc, fast_hours, fast_days = departures(VALUES)
    assert hours.tolist() == fast_hours.tolist() * 10
    assert days.tolist() == fast_days.tolist() * 10
    assert [pd.Timestamp(t) for t in utc[:8]] == [pd.Timestamp(t) for t in fast_utc]


@pytest.mark.parametrize(
    "value",
    [
        "0001-01-01T00:00:00",
        "0001-01-01T00:30:00+05:00",  # the offset moves it before year 1
        "9999-12-31T23:59:00-05:00",  # ... after year 9999
        "9999-12-31T23:59:00",
        "1677-01-01T00:00:00",  # before nanosecond timestamps begin
        "2263-01-01T00:00:00",  # after they end
        "garbage",
        "2013-13-01",
    ],
)
@pytest.mark.parametrize("rows", [3, 100], ids=["fast", "pandas"])
def test_dates_out_of_range_or_garbage_are_400_naming_input_and_row(value: str, rows: int) -> None:
    values = ["2013-01-01T05:15:00-05:00"] * rows
    values[2] = value
    with pytest.raises(InvalidInputError, match=r"'event_timestamp' holds .* at row 2") as err:
        departures(values, "event_timestamp")
    assert err.value.status_code == 400
