"""Decoding of OIP v2 requests: the happy paths and every kind of bad input named in a 4xx."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest

from driftloop.errors import InvalidInputError, PayloadTooLargeError
from driftloop.schema import EVENT_TIMESTAMP, MODEL_INPUT_COLUMNS
from serving import codec
from serving.examples import ROW, features_request, flight_request


def _decode(body: Any, max_rows: int = 100) -> codec.Decoded:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return codec.decode(raw, max_rows)


def test_decode_detects_features_mode_and_keeps_row_order() -> None:
    d = _decode(features_request(3, request_id="r1", routing_key="k"))
    assert d.mode == codec.FEATURES
    assert d.n == 3
    assert d.request_id == "r1"
    assert d.routing_key == "k"
    assert d.columns["distance"].tolist() == [200.0, 500.0, 800.0]
    assert list(d.columns["carrier"]) == ["UA", "UA", "UA"]


def test_decode_detects_flight_mode_and_generates_an_id() -> None:
    d = _decode(flight_request(2))
    assert d.mode == codec.FLIGHT
    assert d.n == 2
    assert len(d.request_id) == 32


def test_decode_accepts_nested_column_shape() -> None:
    body = features_request(2)
    for t in body["inputs"]:
        t["shape"] = [2, 1]
        t["data"] = [[v] for v in t["data"]]
    assert _decode(body).columns["distance"].tolist() == [200.0, 500.0]


def test_decode_allows_null_features_but_not_null_request_fields() -> None:
    body = features_request(2)
    temp = next(t for t in body["inputs"] if t["name"] == "temp")
    temp["data"] = [None, 3.0]
    d = _decode(body)
    assert np.isnan(d.columns["temp"][0])
    assert d.columns["temp"][1] == 3.0
    dist = next(t for t in body["inputs"] if t["name"] == "distance")
    dist["data"] = [None, 3.0]
    with pytest.raises(InvalidInputError, match="'distance' is null at row 0"):
        _decode(body)


def _mutated(column: str, **changes: Any) -> dict[str, Any]:
    body = copy.deepcopy(features_request(2))
    tensor = next(t for t in body["inputs"] if t["name"] == column)
    tensor.update(changes)
    return body


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "malformed JSON"),
        (b"[]", "invalid request"),
        ({"inputs": []}, "no inputs"),
        (_mutated("distance", shape=[3]), "has 3 rows, the first had 2"),
        (_mutated("carrier", shape=[2, 2]), "expected \\[n\\] or \\[n, 1\\]"),
        (_mutated("distance", data=[1.0]), "holds 1 values"),
        (_mutated("distance", datatype="BYTES"), "expected a numeric one"),
        (_mutated("carrier", datatype="FP64"), "expected BYTES"),
        (_mutated("distance", datatype="FP128"), "invalid request at inputs.*datatype"),
        (_mutated("distance", data=["far", 2.0]), "non-numeric value 'far' at row 0"),
        (_mutated("distance", data=[True, 2.0]), "non-numeric value"),
        (_mutated("carrier", data=["UA", 7]), "non-string value '7' at row 1"),
        (_mutated("temp", name="tmp"), "unknown input 'tmp'"),
        (_mutated("temp", name="distance"), "duplicated input"),
    ],
)
def test_decode_rejects_bad_input_naming_the_problem(body: Any, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        _decode(body)


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e400"])
def test_decode_rejects_nan_and_inf(literal: bytes) -> None:
    raw = orjson.dumps(features_request(2)).replace(b"[200.0,500.0]", b"[200.0," + literal + b"]")
    with pytest.raises(InvalidInputError, match="'distance' holds NaN or inf at row 1"):
        _decode(raw)


def test_decode_rejects_missing_columns_for_the_mode() -> None:
    body = flight_request(1)
    body["inputs"] = [t for t in body["inputs"] if t["name"] != "tailnum"]
    with pytest.raises(InvalidInputError, match=r"missing input.*tailnum.*'flight'"):
        _decode(body)
    with pytest.raises(InvalidInputError, match="content_type must be one of"):
        _decode(features_request(1, content_type="csv"))


def test_decode_rejects_too_many_rows_with_413() -> None:
    with pytest.raises(PayloadTooLargeError) as err:
        _decode(features_request(5), max_rows=4)
    assert err.value.status_code == 413


def test_decode_rejects_unknown_outputs_and_filters_known_ones() -> None:
    body = features_request(1)
    body["outputs"] = [{"name": "is_late"}]
    assert _decode(body).outputs == ("is_late",)
    body["outputs"] = [{"name": "score"}]
    with pytest.raises(InvalidInputError, match="unknown output 'score'"):
        _decode(body)


def test_encode_writes_probability_and_label_tensors() -> None:
    raw = codec.encode("m", "3", "r1", np.array([0.2, 0.7]), codec.OUTPUTS, {"variant": "x"})
    out = orjson.loads(raw)
    assert out["model_name"] == "m"
    assert out["model_version"] == "3"
    assert out["id"] == "r1"
    probs, labels = out["outputs"]
    assert probs == {
        "name": "late_probability",
        "shape": [2],
        "datatype": "FP64",
        "data": [0.2, 0.7],
    }
    assert labels["data"] == [0, 1]
    assert labels["datatype"] == "INT64"


def test_request_body_encodes_a_frame_that_decode_accepts() -> None:
    """The demo's shape: complete feature rows with missing values and tz-aware departures."""
    frame = pd.DataFrame([{c: ROW[c] for c in MODEL_INPUT_COLUMNS}] * 3)
    frame.loc[1, "temp"] = np.nan
    frame.loc[2, "plane_type"] = None
    frame["seats"] = pd.array([149, None, 20], dtype="Int64")
    frame[EVENT_TIMESTAMP] = pd.to_datetime(
        ["2013-01-01 10:15", "2013-01-01 11:00", None], utc=True
    )
    body = codec.request_body(frame, "r9", {"routing_key": "k"})
    assert (body["id"], body["parameters"]) == ("r9", {"routing_key": "k"})
    tensors = {t["name"]: t for t in body["inputs"]}
    assert [t["name"] for t in body["inputs"]] == [*MODEL_INPUT_COLUMNS, EVENT_TIMESTAMP]
    assert tensors["carrier"]["datatype"] == "BYTES"
    assert tensors["temp"] == {
        "name": "temp",
        "shape": [3],
        "datatype": "FP64",
        "data": [39.0, None, 39.0],
    }
    assert tensors["seats"]["data"] == [149.0, None, 20.0]
    assert tensors["plane_type"]["data"][2] is None
    assert tensors[EVENT_TIMESTAMP]["data"] == [
        "2013-01-01T10:15:00+00:00",
        "2013-01-01T11:00:00+00:00",
        None,
    ]
    decoded = _decode(body)
    assert decoded.mode == codec.FEATURES
    assert decoded.n == 3
    assert np.isnan(decoded.columns["temp"][1])


# -- caps: one request cannot stall a replica ------------------------------------------------
LIMITS = codec.Limits(max_inputs=32, max_id_length=16, max_text_length=30)


def _capped(body: Any) -> codec.Decoded:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return codec.decode(raw, 100, LIMITS)


def test_default_limits_are_the_settings_defaults() -> None:
    from driftloop.settings import ServingSettings

    defaults = ServingSettings()
    assert codec.Limits.of(defaults) == codec.DEFAULT_LIMITS
    assert codec.Limits.of(defaults.model_copy(update={"max_inputs": 3})).max_inputs == 3


def test_ids_routing_keys_and_texts_at_the_cap_pass() -> None:
    body = features_request(1, request_id="r" * 16, routing_key="k" * 16)
    next(t for t in body["inputs"] if t["name"] == "carrier")["data"] = ["c" * 30]
    d = _capped(body)
    assert (d.request_id, d.routing_key) == ("r" * 16, "k" * 16)
    assert d.columns["carrier"] == ["c" * 30]
    assert _capped(features_request(1, routing_key=12345)).routing_key == "12345"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (features_request(1, request_id="r" * 17), "id has 17 characters \\(at most 16\\)"),
        (features_request(1, routing_key="k" * 17), "routing_key has 17 characters"),
        (features_request(1, routing_key={"a": 1}), "routing_key must be a string"),
        (features_request(1, routing_key=[1, 2]), "routing_key must be a string"),
        (
            orjson.dumps(features_request(1, routing_key=7)).replace(b":7", b":" + b"9" * 40),
            "routing_key has 40 characters",
        ),
        (_mutated("carrier", data=["UA", "x" * 31]), "'carrier' holds a text of 31 .* row 1"),
        (
            features_request(1) | {"parameters": {f"p{i}": i for i in range(33)}},
            "more parameters than the limit of 32",
        ),
        (
            features_request(1) | {"outputs": [{"name": "is_late"}] * 33},
            "33 outputs exceed the limit of 32",
        ),
        (
            features_request(1) | {"outputs": [{"name": "s" * 10_000}]},
            "unknown output 's{40}\\.\\.\\.'",
        ),
    ],
)
def test_caps_are_400_naming_the_field(body: Any, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message) as err:
        _capped(body)
    assert err.value.status_code == 400
    assert len(str(err.value)) < 300  # never echoes the oversized value


def test_too_many_inputs_is_400_before_any_per_name_work() -> None:
    tensor = {"name": "x", "shape": [1], "datatype": "FP64", "data": [1.0]}
    body = {"inputs": [{**tensor, "name": f"n{i}"} for i in range(100_000)]}
    # refused by counting '{' before parsing: 4 objects per allowed input and a margin
    with pytest.raises(InvalidInputError, match="more than 192 JSON objects") as err:
        _capped(body)
    assert err.value.status_code == 400
    same = {"inputs": [tensor] * 100_000}  # 100k duplicates: same answer, no quadratic scan
    with pytest.raises(InvalidInputError, match="more than 192 JSON objects"):
        _capped(same)
    # under the object count, above the cap: named by the schema's ceiling, then the setting
    over = {"inputs": [{**tensor, "name": f"n{i}"} for i in range(40)]}
    with pytest.raises(InvalidInputError, match="40 inputs exceed the limit of 32"):
        _capped(over)


def test_duplicate_names_are_found_in_one_pass_and_reported_short() -> None:
    body = features_request(1)
    body["inputs"] = body["inputs"] + body["inputs"][:3]
    with pytest.raises(InvalidInputError, match=r"duplicated input\(s\) \['carrier', 'dest', "):
        codec.decode(orjson.dumps(body), 100)  # 27 inputs: under the cap


@pytest.mark.parametrize(
    ("literal", "message"),
    [
        (b"1" + b"0" * 400, "'distance' holds a number beyond FP64 range at row 1"),
        (b"-1" + b"0" * 400, "'distance' holds a number beyond FP64 range at row 1"),
        (b"1e400", "'distance' holds NaN or inf at row 1"),
        (b"1" + b"0" * 5000, "malformed JSON"),  # above Python's int digit limit
    ],
)
def test_overflowing_numbers_are_400_naming_input_and_row(literal: bytes, message: str) -> None:
    raw = orjson.dumps(features_request(2)).replace(b"[200.0,500.0]", b"[200.0," + literal + b"]")
    with pytest.raises(InvalidInputError, match=message):
        _decode(raw)
    with_null = raw.replace(b"[200.0,", b"[null,")  # the path that tolerates nulls, too
    with pytest.raises(InvalidInputError):
        _decode(with_null)


def test_a_long_unknown_field_is_not_echoed_whole() -> None:
    raw = orjson.dumps(features_request(1) | {"k" * 100_000: 1})
    with pytest.raises(InvalidInputError, match="invalid request") as err:
        _decode(raw)
    assert len(str(err.value)) < 500


# -- the cost of a body is bounded before pydantic builds it ---------------------------------
def _one_tensor(data: bytes, extra: bytes = b"") -> bytes:
    return (
        b'{"inputs": [{"name": "distance", "shape": [1], "datatype": "FP64", '
        + extra
        + b'"data": ['
        + data
        + b"]}]}"
    )


def test_the_default_body_limit_holds_a_full_request_in_either_mode() -> None:
    """max_body_bytes is sized from the largest request allowed: 10,000 rows, features mode
    with every number at full float precision (the flight mode needs half as much)."""
    from driftloop.settings import ServingSettings

    defaults = ServingSettings()
    n = defaults.max_rows_per_request
    rng = np.random.default_rng(7)
    frame = pd.DataFrame({c: [ROW[c]] * n for c in MODEL_INPUT_COLUMNS})
    for c in MODEL_INPUT_COLUMNS:
        if not isinstance(ROW[c], str):
            frame[c] = rng.uniform(-10_000, 10_000, n)
    body = codec.request_body(frame, "r" * 128, {"routing_key": "k" * 128})
    raw = orjson.dumps(body)
    assert len(raw) < defaults.max_body_bytes
    assert codec.decode(raw, n).n == n
    flight = orjson.dumps(flight_request(n))
    assert len(flight) < len(raw)
    assert codec.decode(flight, n).n == n


def test_nested_data_at_the_row_limit_passes_the_container_count() -> None:
    body = features_request(100)
    for t in body["inputs"]:
        t["shape"], t["data"] = [100, 1], [[v] for v in t["data"]]
    assert _decode(body, 100).n == 100  # 2,000 nested lists: what 100 rows may hold


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (_one_tensor(b",".join([b"[]"] * 5000)), 413, "more than 3328 JSON arrays"),
        (_one_tensor(b",".join([b"[0]"] * 5000)), 413, "more than 3328 JSON arrays"),
        (_one_tensor(b",".join([b"{}"] * 500)), 400, "more than 192 JSON objects"),
        (
            b'{"parameters": {"x": [' + b",".join([b"[]"] * 5000) + b"]}, " + _one_tensor(b"1")[1:],
            413,
            "JSON arrays",
        ),
        (_one_tensor(b",".join([b"0"] * 100_001)), 413, "input #0 holds 100001 values"),
        (
            _one_tensor(b"1", b'"shape": [1, 1, 1, 1, 1, 1, 1, 1, 1], ').replace(
                b'"shape": [1], ', b"", 1
            ),
            400,
            "inputs.0.shape",
        ),
        (
            _one_tensor(
                b"1", b'"parameters": {' + b",".join(b'"p%d": 1' % i for i in range(9)) + b"}, "
            ),
            400,
            "inputs.0.parameters",
        ),
    ],
    ids=[
        "empty lists",
        "one-value lists",
        "empty objects",
        "nested parameter value",
        "values above the ceiling",
        "long shape",
        "input parameters",
    ],
)
def test_container_heavy_and_oversized_bodies_are_refused_naming_why(
    body: bytes, status: int, message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message) as err:
        _decode(body, 100)  # 100 rows: 32 * (100 + 2) + 64 arrays at most
    assert err.value.status_code == status
    assert len(str(err.value)) < 300


def test_the_schema_ceilings_cover_the_settings_ceilings() -> None:
    """The static list caps of the schema are the settings' maxima: no setting can allow a
    request the schema refuses."""
    from pydantic import ValidationError

    from driftloop.settings import ServingSettings
    from serving.schemas import MAX_TENSOR_VALUES, MAX_TENSORS

    ServingSettings(max_rows_per_request=MAX_TENSOR_VALUES, max_inputs=MAX_TENSORS)
    with pytest.raises(ValidationError, match="max_rows_per_request"):
        ServingSettings(max_rows_per_request=MAX_TENSOR_VALUES + 1)
    with pytest.raises(ValidationError, match="max_inputs"):
        ServingSettings(max_inputs=MAX_TENSORS + 1)


#: A long column (beyond codec.SMALL_COLUMN) takes the NumPy checks: each bad value is still
#: refused with the message the value-by-value checks give, naming its input and row.
LONG = 100


def _long_body(column: str, literal: bytes) -> bytes:
    body = features_request(LONG)
    tensor = next(t for t in body["inputs"] if t["name"] == column)
    tensor["data"][70] = "@placeholder@"
    return orjson.dumps(body).replace(b'"@placeholder@"', literal)


@pytest.mark.parametrize(
    ("column", "literal", "message"),
    [
        ("distance", b"NaN", "'distance' holds NaN or inf at row 70"),
        ("distance", b"1e400", "'distance' holds NaN or inf at row 70"),
        ("distance", b"1e39", "'distance' holds 1e\\+39 at row 70: beyond the models' float32"),
        ("distance", b"true", "'distance' holds a non-numeric value 'True' at row 70"),
        ("distance", b'"5"', "'distance' holds a non-numeric value '5' at row 70"),
        ("distance", b"1" + b"0" * 400, "'distance' holds a number beyond FP64 range at row 70"),
        ("distance", b"[1]", "'distance' holds a non-numeric value '\\[1\\]' at row 70"),
        ("distance", b"null", "'distance' is null at row 70"),
        ("carrier", b"7", "'carrier' \\(BYTES\\) holds a non-string value '7' at row 70"),
        ("carrier", b'"' + b"x" * 300 + b'"', "'carrier' holds a text of 300 characters at row 70"),
    ],
)
def test_long_columns_refuse_bad_values_naming_input_and_row(
    column: str, literal: bytes, message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        _decode(_long_body(column, literal), max_rows=LONG)


def test_long_columns_decode_as_the_short_path_does() -> None:
    body = features_request(LONG)
    tensor = next(t for t in body["inputs"] if t["name"] == "distance")
    tensor["data"][3] = 7  # ints and floats mixed
    raw = orjson.dumps(body)
    got = _decode(raw, max_rows=LONG)
    want = [codec._numeric("distance", [v]) for v in tensor["data"]]
    np.testing.assert_array_equal(got.columns["distance"], np.concatenate(want))
    assert got.columns["distance"].dtype == np.float64
    carrier = next(t for t in body["inputs"] if t["name"] == "carrier")["data"]
    assert got.columns["carrier"] == carrier


def test_a_long_numeric_column_of_nested_lists_or_one_huge_string_is_400() -> None:
    """Review finding: np.array on such a column made a 2-D array (accepted; the model then
    failed with a 500) or a ~1 GB unicode array from one 3.9 MB string; the type check keeps
    both away from NumPy."""
    body = features_request(LONG)
    distance = next(t for t in body["inputs"] if t["name"] == "distance")
    distance["shape"] = [LONG, 1]
    distance["data"] = [[[v]] for v in distance["data"]]
    with pytest.raises(InvalidInputError, match="'distance' holds a non-numeric value '\\[200"):
        _decode(body, max_rows=LONG)
    distance["shape"] = [LONG]
    distance["data"] = ["x" * 1_000_000] + [""] * (LONG - 1)
    with pytest.raises(InvalidInputError, match="'distance' holds a non-numeric value 'xxx"):
        _decode(body, max_rows=LONG)
