"""OIP v2 tensors <-> model rows (the encoding is documented in :mod:`serving.schemas`).

:func:`decode` validates a request body, :func:`encode` writes a response body and
:func:`request_body` is the one client-side encoder of a request (demo traffic, benchmark,
tests, examples), built on the same :data:`TEXT_COLUMNS`.

Validation names the problem in every 400: malformed JSON, unknown or duplicated inputs, wrong
shape, wrong datatype, non-numeric or NaN/inf values, numbers beyond FP64 (``1e400``,
``10**400``), nulls where a value is required, rows above ``max_rows_per_request`` (413).
``null`` is allowed only where a value may be unknown: the online-store features
(FEATURE_COLUMNS) and ``tailnum``.

Bounds (:class:`Limits`, from ``settings.serving``), so one request cannot stall a replica:
the request ``id`` and ``parameters.routing_key`` at most ``max_id_length`` characters (the
routing key a string or an integer), text (BYTES) values at most ``max_text_length``
characters, at most ``max_inputs`` input tensors and as many requested outputs, at most
:data:`MAX_PARAMETERS` request parameters. Every check is linear in the request (duplicate
names through a set); the cost of a request is bounded by ``max_body_bytes`` before decoding.

Building Python objects is what costs: JSON arrays and objects are ~10x dearer to validate than
numbers or strings (an 8 MB body of ``[],[],...`` took 1.8 s). So before pydantic sees a body,
:func:`check_containers` counts its ``[`` and ``{`` bytes (C speed, ~1 ms per MB) and refuses
more than a request of ``max_rows`` rows can hold (:class:`Containers`, 413): the arrays of one
list per row and column (shape ``[n, 1]`` written nested), a few objects per tensor. The schema
caps each list at a static ceiling (:mod:`serving.schemas`). A ``[`` or ``{`` inside a text
value counts too: the count is an upper bound, and the caps leave room for it.
"""

from __future__ import annotations

import math
import os
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Self

import numpy as np
import orjson
import pandas as pd
from pydantic import ValidationError

from driftloop.errors import InvalidInputError, PayloadTooLargeError
from driftloop.schema import (
    CATEGORICAL_COLUMNS,
    EVENT_TIMESTAMP,
    FEATURE_COLUMNS,
    FLIGHT_KEY,
    MODEL_INPUT_COLUMNS,
    OUTPUT_LABEL,
    OUTPUT_PROBABILITY,
    REQUEST_FIELDS,
)
from driftloop.settings import ServingSettings
from serving import explain
from serving.schemas import MAX_PARAMETERS, NUMERIC_DATATYPES, InferenceRequest

FLIGHT = "flight"
FEATURES = "features"
CONTENT_TYPES = (FLIGHT, FEATURES)
#: Text (BYTES) columns; everything else is numeric.
TEXT_COLUMNS = frozenset(
    [*CATEGORICAL_COLUMNS, "tailnum", "scheduled_departure", FLIGHT_KEY, EVENT_TIMESTAMP]
)
NULLABLE = frozenset([*FEATURE_COLUMNS, "tailnum", FLIGHT_KEY, EVENT_TIMESTAMP])
KNOWN_INPUTS = frozenset([*MODEL_INPUT_COLUMNS, *REQUEST_FIELDS, FLIGHT_KEY, EVENT_TIMESTAMP])
OUTPUTS = (OUTPUT_PROBABILITY, OUTPUT_LABEL)
REQUIRED = {FLIGHT: list(REQUEST_FIELDS), FEATURES: list(MODEL_INPUT_COLUMNS)}
#: Largest magnitude of a finite FP64 (an integer literal above it does not convert).
_FLOAT_MAX = sys.float_info.max


def _default(name: str) -> int:
    value = ServingSettings.model_fields[name].default
    assert isinstance(value, int)
    return value


@dataclass(frozen=True, slots=True)
class Limits:
    """Size caps of a request (defaults: those of ``ServingSettings``)."""

    max_inputs: int = _default("max_inputs")
    max_id_length: int = _default("max_id_length")
    max_text_length: int = _default("max_text_length")
    max_parameters: int = MAX_PARAMETERS

    @classmethod
    def of(cls, serving: ServingSettings) -> Self:
        return cls(serving.max_inputs, serving.max_id_length, serving.max_text_length)


DEFAULT_LIMITS = Limits()


@dataclass
class Decoded:
    """A validated request: columns by name, row count, mode, ids."""

    request_id: str
    n: int
    mode: str
    columns: dict[str, Any]  # name -> list[str|None] (text) or float64 ndarray (numeric)
    routing_key: str | None
    outputs: tuple[str, ...]
    #: ``parameters.synthetic``: the mark of load-test / probe traffic (None: real traffic)
    synthetic: str | None = None
    #: ``parameters.explain``: attributions asked for (:mod:`serving.explain`)
    explain: bool = False


class _RandomIds:
    """Random request ids: 32 hex digits (128 bits from ``os.urandom``, as ``uuid4().hex``
    holds 122), read 256 ids at a time. ``uuid4`` makes a system call per id, and the call
    releases the GIL: on a busy machine every release let a background thread in, and the
    event loop waited to get it back (~10 % of a single-row request's time under load)."""

    BATCH = 256

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buffer = b""
        self._at = 0
        os.register_at_fork(after_in_child=self._forget)  # a child must not repeat our ids

    def _forget(self) -> None:
        self._lock = threading.Lock()
        self._buffer, self._at = b"", 0

    def __call__(self) -> str:
        with self._lock:
            if self._at >= len(self._buffer):
                self._buffer, self._at = os.urandom(16 * self.BATCH), 0
            start = self._at
            self._at += 16
            return self._buffer[start : start + 16].hex()


#: The id of a request that did not bring one.
new_request_id = _RandomIds()


def describe_validation_error(err: ValidationError) -> str:
    """One line naming the first problem of a pydantic validation error (a 400 message). The
    inputs are left out of the error list: converting a huge rejected value costs more than
    the validation did."""
    return describe_errors(err.errors(include_url=False, include_input=False))


@dataclass(frozen=True, slots=True)
class Containers:
    """Most JSON arrays (``[``) and objects (``{``) a body may hold."""

    arrays: int
    objects: int

    @classmethod
    def inference(cls, max_rows: int, limits: Limits = DEFAULT_LIMITS) -> Self:
        """An inference request: per tensor its shape and data plus one list per row (shape
        ``[n, 1]`` written as ``[[v], [v], ...]``), the inputs and outputs lists; objects: the
        request, each tensor and output with its parameters; a margin for values that hold
        brackets."""
        return cls(limits.max_inputs * (max_rows + 2) + 64, 4 * limits.max_inputs + 64)


def check_containers(body: bytes, limit: Containers) -> None:
    """Refuse a body with more ``[`` or ``{`` bytes than ``limit`` allows, before any parsing
    (an upper bound of its JSON arrays and objects: brackets in strings count too): 400 for
    objects (too many tensors or parameters), 413 for arrays (too many rows)."""
    if body.count(b"{") > limit.objects:
        raise InvalidInputError(
            f"body holds more than {limit.objects} JSON objects ('{{' counted): too many "
            "inputs, outputs or parameters"
        )
    if body.count(b"[") > limit.arrays:
        raise PayloadTooLargeError(
            f"body holds more than {limit.arrays} JSON arrays ('[' counted): send fewer rows "
            "per request, or flat data"
        )


def _too_long(err: ValidationError, max_rows: int, limits: Limits) -> InvalidInputError | None:
    """The codec's own message for a list or dict above its static ceiling (the first error),
    naming the setting's limit (at most the ceiling); None for other errors."""
    first = err.errors(include_url=False, include_input=False)[0]
    if first.get("type") != "too_long":
        return None
    loc = first.get("loc", ())
    actual = (first.get("ctx") or {}).get("actual_length", "too many")
    if loc == ("inputs",):
        return InvalidInputError(
            f"{actual} inputs exceed the limit of {limits.max_inputs} per request"
        )
    if loc == ("outputs",):
        return InvalidInputError(
            f"{actual} outputs exceed the limit of {limits.max_inputs} per request"
        )
    if loc == ("parameters",):  # pydantic does not count a dict it stops early
        return InvalidInputError(
            f"request has more parameters than the limit of {limits.max_parameters}"
        )
    if len(loc) == 3 and loc[0] == "inputs" and loc[2] == "data":
        return PayloadTooLargeError(
            f"input #{loc[1]} holds {actual} values: more than {max_rows} rows per request"
        )
    return None


def describe_errors(errors: Sequence[Mapping[str, Any]]) -> str:
    """One line naming the first of pydantic-style ``errors`` (dicts with loc, msg, type)."""
    first = errors[0] if errors else {}
    if first.get("type") == "json_invalid":
        return _clip(f"malformed JSON: {first.get('msg', '')}".rstrip(": "))
    loc = _clip(".".join(str(p) for p in first.get("loc", ())))
    return f"invalid request at {loc or 'body'}: {_clip(str(first.get('msg', 'invalid')))}"


def _clip(text: str, limit: int = 200) -> str:
    """``text`` cut to ``limit`` characters (an error message never echoes a whole field)."""
    return text if len(text) <= limit else f"{text[:limit]}..."


def _shape(shape: list[int]) -> str:
    return str(shape) if len(shape) <= 4 else f"of {len(shape)} dimensions"


def _flatten(data: list[Any], shape: list[int], name: str) -> list[Any]:
    if data and isinstance(data[0], list):
        if len(shape) != 2:
            raise InvalidInputError(
                f"input {name!r} holds nested data but has shape {_shape(shape)}"
            )
        flat: list[Any] = []
        for row in data:
            if not isinstance(row, list):
                raise InvalidInputError(f"input {name!r} mixes nested and flat data")
            flat.extend(row)
        return flat
    return data


def _out_of_range(name: str, data: list[Any]) -> InvalidInputError:
    """The error for an integer beyond FP64 (``np.asarray`` raised OverflowError)."""
    i = next(
        (i for i, v in enumerate(data) if type(v) is int and not -_FLOAT_MAX <= v <= _FLOAT_MAX),
        0,
    )
    return InvalidInputError(f"input {name!r} holds a number beyond FP64 range at row {i}")


#: Up to this many values a numeric input is checked value by value in Python (a few numpy
#: calls per column cost more on one row than the loop; the numpy path names the problem).
SMALL_COLUMN = 64
_NUMBER_TYPES = frozenset((int, float))


def _numeric(name: str, data: list[Any]) -> np.ndarray:
    if len(data) <= SMALL_COLUMN and all(
        (type(v) is float or type(v) is int) and -FLOAT32_MAX <= v <= FLOAT32_MAX for v in data
    ):  # numbers, finite (NaN compares False) and in the models' range: nothing else to check
        return np.asarray(data, dtype=np.float64)
    nullable = name in NULLABLE
    # plain numbers only (a type set at C speed: bools, strings, None and nested lists take
    # the value-by-value checks below, which name the row; NumPy never sees them, so one huge
    # string cannot become a huge array nor nested lists a 2-D column)
    if set(map(type, data)) <= _NUMBER_TYPES:
        try:
            arr = np.asarray(data, dtype=np.float64)
        except OverflowError:
            raise _out_of_range(name, data) from None
    else:
        for i, v in enumerate(data):
            if v is None:
                if not nullable:
                    raise InvalidInputError(f"input {name!r} is null at row {i}; a value is needed")
            elif type(v) is not float and type(v) is not int:
                raise InvalidInputError(
                    f"input {name!r} holds a non-numeric value {str(v)[:40]!r} at row {i}"
                )
        try:
            arr = np.asarray([math.nan if v is None else v for v in data], dtype=np.float64)
        except OverflowError:
            raise _out_of_range(name, data) from None
        nulls = np.fromiter((v is None for v in data), dtype=bool, count=len(data))
        bad = ~np.isfinite(arr) & ~nulls
        if bad.any():
            raise InvalidInputError(f"input {name!r} holds NaN or inf at row {int(bad.argmax())}")
        return _in_model_range(name, arr)
    if not np.isfinite(arr).all():
        i = int((~np.isfinite(arr)).argmax())
        raise InvalidInputError(f"input {name!r} holds NaN or inf at row {i}")
    return _in_model_range(name, arr)


#: The models compute in float32: a larger finite float64 becomes inf there (and NaN outputs).
FLOAT32_MAX = float(np.finfo(np.float32).max)


def _in_model_range(name: str, arr: np.ndarray) -> np.ndarray:
    """``arr``, unless a value is beyond float32 (400: no model could score the row)."""
    big = np.abs(arr) > FLOAT32_MAX  # NaN (null) compares False
    if big.any():
        i = int(big.argmax())
        raise InvalidInputError(
            f"input {name!r} holds {arr[i]:.3g} at row {i}: beyond the models' float32 range "
            f"(|x| <= {FLOAT32_MAX:.3g})"
        )
    return arr


def _text(name: str, data: list[Any], max_length: int) -> list[Any]:
    nullable = name in NULLABLE
    # a long column of plain texts at C speed (a 1,000-row request: 4 columns checked value by
    # value took ~0.5 ms); anything else, the loop below finds the row and says what is wrong
    if (
        len(data) > SMALL_COLUMN
        and set(map(type, data)) == {str}
        and max(map(len, data)) <= max_length
    ):
        return data
    for i, v in enumerate(data):
        if type(v) is str:
            if len(v) > max_length:
                raise InvalidInputError(
                    f"input {name!r} holds a text of {len(v)} characters at row {i} "
                    f"(at most {max_length})"
                )
            continue
        if v is None and nullable:
            continue
        if v is None:
            raise InvalidInputError(f"input {name!r} is null at row {i}; a value is needed")
        raise InvalidInputError(
            f"input {name!r} (BYTES) holds a non-string value {str(v)[:40]!r} at row {i}"
        )
    return data


#: A synthetic-traffic mark: a short name (``load-test``, ``probe``); ``true`` means ``synthetic``.
_MARK_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


def synthetic_mark(value: Any, where: str = "parameters.synthetic") -> str | None:
    """The mark of load-test or probe traffic given as ``value`` (None/false: real traffic):
    true -> ``synthetic``, else a name of 1-32 letters, digits, ``.``, ``_`` or ``-``."""
    if value is None or value is False:
        return None
    if value is True:
        return "synthetic"
    if type(value) is not str or not 0 < len(value) <= 32 or not set(value) <= _MARK_CHARS:
        raise InvalidInputError(
            f"{where} must be true or a name of 1-32 letters, digits, '.', '_' or '-' "
            "(e.g. 'load-test')"
        )
    return value


def _routing_key(value: Any, max_length: int) -> str | None:
    if value is None:
        return None
    if type(value) is int:
        value = str(value)
    if type(value) is not str:
        raise InvalidInputError("parameters.routing_key must be a string")
    if len(value) > max_length:
        raise InvalidInputError(
            f"parameters.routing_key has {len(value)} characters (at most {max_length})"
        )
    return value


def _check_names(names: list[str], max_length: int) -> None:
    """Duplicated and unknown input names (one pass over a set: linear)."""
    seen: set[str] = set()
    dup: set[str] = set()
    for x in names:
        if x in seen:
            dup.add(x)
        seen.add(x)
    if dup:
        shown = sorted(d[:max_length] for d in dup)[:5]
        raise InvalidInputError(f"duplicated input(s) {shown}")
    unknown = [x for x in names if x not in KNOWN_INPUTS]
    if unknown:
        raise InvalidInputError(
            f"unknown input {unknown[0][:max_length]!r}: send {REQUEST_FIELDS} (flight) "
            f"or {MODEL_INPUT_COLUMNS} (features)"
        )


def decode(body: bytes, max_rows: int, limits: Limits = DEFAULT_LIMITS) -> Decoded:
    """Parse and validate an inference request body (caps: ``limits``, see the module)."""
    check_containers(body, Containers.inference(max_rows, limits))
    try:
        req = InferenceRequest.model_validate_json(body)
    except ValidationError as err:
        raise _too_long(err, max_rows, limits) or InvalidInputError(
            describe_validation_error(err)
        ) from None
    if req.id is not None and len(req.id) > limits.max_id_length:
        raise InvalidInputError(f"id has {len(req.id)} characters (at most {limits.max_id_length})")
    params = req.parameters or {}
    if len(params) > limits.max_parameters:
        raise InvalidInputError(
            f"{len(params)} parameters exceed the limit of {limits.max_parameters}"
        )
    key = _routing_key(params.get("routing_key"), limits.max_id_length)
    if not req.inputs:
        raise InvalidInputError("request has no inputs")
    if len(req.inputs) > limits.max_inputs:
        raise InvalidInputError(
            f"{len(req.inputs)} inputs exceed the limit of {limits.max_inputs} per request"
        )
    if req.outputs is not None and len(req.outputs) > limits.max_inputs:
        raise InvalidInputError(
            f"{len(req.outputs)} outputs exceed the limit of {limits.max_inputs} per request"
        )
    names = [t.name for t in req.inputs]
    _check_names(names, limits.max_id_length)
    mode = params.get("content_type")
    if mode is None:
        mode = FEATURES if set(MODEL_INPUT_COLUMNS) <= set(names) else FLIGHT
    if mode not in CONTENT_TYPES:
        raise InvalidInputError(f"parameters.content_type must be one of {CONTENT_TYPES}")
    missing = [c for c in REQUIRED[mode] if c not in names]
    if missing:
        raise InvalidInputError(f"missing input(s) {missing} for content_type {mode!r}")
    n = -1
    columns: dict[str, Any] = {}
    for t in req.inputs:
        shape = t.shape
        if len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] != 1) or shape[0] < 0:
            raise InvalidInputError(
                f"input {t.name!r} has shape {_shape(shape)}: expected [n] or [n, 1] (one column)"
            )
        if n < 0:
            n = shape[0]
            if n == 0:
                raise InvalidInputError("request has zero rows")
            if n > max_rows:
                raise PayloadTooLargeError(f"{n} rows exceed the limit of {max_rows} per request")
        elif shape[0] != n:
            raise InvalidInputError(f"input {t.name!r} has {shape[0]} rows, the first had {n}")
        data = _flatten(t.data, shape, t.name)
        if len(data) != n:
            raise InvalidInputError(
                f"input {t.name!r} has shape {_shape(shape)} but holds {len(data)} values"
            )
        if t.name in TEXT_COLUMNS:
            if t.datatype != "BYTES":
                raise InvalidInputError(
                    f"input {t.name!r} has datatype {t.datatype}, expected BYTES"
                )
            columns[t.name] = _text(t.name, data, limits.max_text_length)
        else:
            if t.datatype not in NUMERIC_DATATYPES:
                raise InvalidInputError(
                    f"input {t.name!r} has datatype {t.datatype}, expected a numeric one "
                    "(FP64, FP32, INT64, INT32 ...)"
                )
            columns[t.name] = _numeric(t.name, data)
    outputs: tuple[str, ...] = OUTPUTS
    if req.outputs:
        wanted = [o.name for o in req.outputs]
        bad = [o for o in wanted if o not in OUTPUTS]
        if bad:
            raise InvalidInputError(
                f"unknown output {_clip(bad[0], 40)!r}: available {list(OUTPUTS)}"
            )
        outputs = tuple(wanted)
    return Decoded(
        request_id=req.id or new_request_id(),
        n=n,
        mode=mode,
        columns=columns,
        routing_key=key,
        synthetic=synthetic_mark(params["synthetic"]) if "synthetic" in params else None,
        explain=explain.parse(params["explain"]) if "explain" in params else False,
        outputs=outputs,
    )


def encode(
    model_name: str,
    version: str,
    request_id: str,
    probabilities: np.ndarray,
    outputs: tuple[str, ...],
    parameters: dict[str, Any],
    threshold: float = 0.5,
    extra: Sequence[dict[str, Any]] = (),
) -> bytes:
    """The OIP v2 response body; ``is_late`` is ``probability >= threshold`` (the answering
    version's decision threshold); ``extra``: more output tensors (the attributions)."""
    n = len(probabilities)
    tensors = []
    for name in outputs:
        if name == OUTPUT_PROBABILITY:
            tensors.append(
                {"name": name, "shape": [n], "datatype": "FP64", "data": probabilities.tolist()}
            )
        else:
            labels = (probabilities >= threshold).astype(np.int64).tolist()
            tensors.append({"name": name, "shape": [n], "datatype": "INT64", "data": labels})
    tensors.extend(extra)
    return orjson.dumps(
        {
            "model_name": model_name,
            "model_version": version,
            "id": request_id,
            "parameters": parameters,
            "outputs": tensors,
        }
    )


def _text_value(value: Any) -> str | None:
    if value is None or (not isinstance(value, str) and bool(pd.isna(value))):
        return None
    if isinstance(value, date):  # datetime and pd.Timestamp too
        return value.isoformat()
    return str(value)


def input_tensor(name: str, values: pd.Series) -> dict[str, Any]:
    """One column as an OIP v2 input tensor: ``BYTES`` for :data:`TEXT_COLUMNS` (dates as
    ISO-8601), ``FP64`` otherwise; ``None`` for missing values (None, NaN, NaT)."""
    data: list[Any]
    if name in TEXT_COLUMNS:
        datatype = "BYTES"
        data = [_text_value(v) for v in values.astype(object).tolist()]
    else:
        datatype = "FP64"
        numbers = values.to_numpy(dtype=np.float64, na_value=np.nan).tolist()
        data = [None if math.isnan(v) else v for v in numbers]
    return {"name": name, "shape": [len(data)], "datatype": datatype, "data": data}


def request_body(
    frame: pd.DataFrame,
    request_id: str | None = None,
    parameters: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The OIP v2 inference request (as a JSON-ready dict) of ``frame``'s rows: one input tensor
    per column, in the frame's column order (see :func:`input_tensor`)."""
    body: dict[str, Any] = {}
    if request_id is not None:
        body["id"] = request_id
    if parameters:
        body["parameters"] = dict(parameters)
    body["inputs"] = [input_tensor(str(c), frame[c]) for c in frame.columns]
    return body
