"""Column names shared by data, features, training, serving and monitoring.

A model's input row is the request fields of a flight (what a caller knows before departure),
columns derived from them, and the features of the Feast FeatureService
``settings.features.feature_service``. The feature repo must expose exactly
:data:`FEATURE_COLUMNS` (Feast field names, without view prefixes).
"""

from __future__ import annotations

#: Unique key of a flight: "{carrier}{flight}-{origin}-{YYYYmmddHHMM local scheduled departure}".
FLIGHT_KEY = "flight_id"
#: Scheduled departure as a tz-aware UTC timestamp (Feast event timestamp of entity rows).
EVENT_TIMESTAMP = "event_timestamp"
#: Target: arrival delay above 15 minutes.
LABEL = "is_late"
LATE_THRESHOLD_MIN = 15

#: Fields a caller sends for a flight; entity keys for the online store among them.
REQUEST_FIELDS = ["carrier", "origin", "dest", "tailnum", "scheduled_departure", "distance"]
#: Feast entity join keys.
ENTITY_KEYS = {"weather": ["origin"], "plane": ["tailnum"], "carrier_origin": ["carrier", "origin"]}

#: Derived from scheduled_departure (local New York time) and the request fields.
DERIVED_COLUMNS = ["dep_hour", "day_of_week"]

#: Features served by the FeatureService (field names in the Feast views).
WEATHER_FEATURES = ["temp", "dewp", "humid", "wind_speed", "precip", "visib", "pressure"]
PLANE_FEATURES = ["plane_year", "seats", "engines", "plane_type"]
CARRIER_ORIGIN_FEATURES = ["late_rate_7d", "mean_dep_delay_7d", "flights_7d"]
FEATURE_COLUMNS = WEATHER_FEATURES + PLANE_FEATURES + CARRIER_ORIGIN_FEATURES

#: The model's input: categorical columns get embeddings, numeric ones are scaled.
CATEGORICAL_COLUMNS = ["carrier", "origin", "dest", "plane_type"]
NUMERIC_COLUMNS = [
    "distance",
    "dep_hour",
    "day_of_week",
    "temp",
    "dewp",
    "humid",
    "wind_speed",
    "precip",
    "visib",
    "pressure",
    "plane_year",
    "seats",
    "engines",
    "late_rate_7d",
    "mean_dep_delay_7d",
    "flights_7d",
]
MODEL_INPUT_COLUMNS = CATEGORICAL_COLUMNS + NUMERIC_COLUMNS
#: Outputs of the model (OIP v2 output tensor names).
OUTPUT_PROBABILITY = "late_probability"
OUTPUT_LABEL = "is_late"
#: Local time zone of the data set's scheduled times.
LOCAL_TZ = "America/New_York"
