"""Point-in-time correctness through Feast's historical retrieval (real Feast, tmp state)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from conftest import build_store

pytestmark = pytest.mark.integration


def test_weather_stamped_after_departure_never_reaches_the_flight(
    tmp_path: Path, january: dict[str, pd.DataFrame]
) -> None:
    from driftloop.features.training import training_frame_from_flights

    flights = january["flights"]
    days = flights["scheduled_departure"] < pd.Timestamp("2013-01-04", tz="UTC")
    flights = flights[days & flights["is_late"].notna()].reset_index(drop=True)
    target = flights[
        (flights["origin"] == "JFK")
        & (flights["scheduled_departure"] > pd.Timestamp("2013-01-02 12:00", tz="UTC"))
    ].iloc[0]
    dep = target["scheduled_departure"]
    absurd = {c: 1.0 for c in ("dewp", "humid", "wind_speed", "precip", "visib", "pressure")}
    weather = pd.concat(
        [
            january["weather"],
            pd.DataFrame(
                [{"origin": "JFK", "time_hour": dep + pd.Timedelta(minutes=1), "temp": 999.0}]
            ).assign(**absurd),
        ],
        ignore_index=True,
    )
    # A control flight 2 minutes after the target: the absurd row is in the past for it.
    control = target.copy()
    control["flight_id"] = "CONTROL"
    control["scheduled_departure"] = dep + pd.Timedelta(minutes=2)
    flights = pd.concat([flights, control.to_frame().T], ignore_index=True)
    flights["is_late"] = flights["is_late"].astype("Int8")
    settings = build_store(
        tmp_path / "state",
        {"flights": flights, "weather": weather, "planes": january["planes"]},
        "2013-01-03T23:00",
    )
    frame = training_frame_from_flights(flights, settings).set_index("flight_id")
    assert frame.loc[target["flight_id"], "temp"] != 999.0
    hour = dep.floor("h")
    expected = january["weather"]
    expected = expected[(expected["origin"] == "JFK") & (expected["time_hour"] == hour)]
    assert frame.loc[target["flight_id"], "temp"] == expected["temp"].item()
    assert frame.loc["CONTROL", "temp"] == 999.0
    # Nothing in any training row is stamped after its departure: aggregates of the first day
    # (no stamp at or before it) are missing rather than borrowed from later days.
    first_day = frame["event_timestamp"] < pd.Timestamp("2013-01-02 05:00", tz="UTC")
    assert frame.loc[first_day, "late_rate_7d"].isna().all()
