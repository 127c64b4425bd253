"""Open Inference Protocol v2 (REST) messages of driftloop, with the wire JSON they stand for.

Encoding chosen by driftloop (columnar, one tensor per column):

* every input tensor is ONE column: ``name`` = column name, ``shape`` = ``[n]`` (or ``[n, 1]``),
  ``datatype`` = ``BYTES`` for text columns (carrier, origin, dest, tailnum, plane_type,
  scheduled_departure) and a numeric type (``FP64``, ``FP32``, ``INT64``, ``INT32`` ...) for
  numbers; ``data`` = the n values in row order (``null`` = missing).
* two input modes, picked by ``parameters.content_type`` or detected from the tensor names:

  - ``"flight"``: the request fields of a flight, :data:`driftloop.schema.REQUEST_FIELDS`
    (carrier, origin, dest, tailnum, scheduled_departure as ISO-8601, distance). driftloop
    derives dep_hour/day_of_week and fetches the features from the online store by entity keys.
  - ``"features"``: complete model rows, every column of
    :data:`driftloop.schema.MODEL_INPUT_COLUMNS` (no online lookup).
* ``parameters.routing_key`` (optional) makes routing sticky for a caller; without it the
  tailnum of the first row (flight mode) or the request id is the key.
* ``parameters.synthetic`` (optional, ``true`` or a name such as ``"load-test"``; or the header
  ``X-Driftloop-Synthetic: load-test``) marks load-test and probe traffic: served, counted with
  ``traffic="synthetic"``, captured with its mark, left out of monitoring and canary evidence.
  With auth on it needs the admin scope (403 otherwise).
* ``parameters.explain`` (optional, ``true``/``false``) adds the output ``attributions`` (FP64,
  [n, f], row-major): per input feature, integrated gradients of the row's probability against
  the version's baseline; its ``parameters`` name the ``features`` (in column order), the
  ``baseline_probability`` and each row's ``convergence_delta`` (the attributions of a row sum
  to ``late_probability - baseline_probability`` up to it). See :mod:`serving.explain`.
* outputs: ``late_probability`` (FP64, [n]) and ``is_late`` (INT64, [n]; probability >= the
  answering version's decision threshold: the cost-optimal cut on its holdout under the KPI's
  error costs, stored with the version; 0.5 for versions registered without one). The response
  ``parameters`` say which: ``threshold`` and ``threshold_source`` (``version`` or ``default``),
  and ``lineage_id``: the answering version's lineage (``GET /v2/models/{name}/lineage/{id}``).

Feedback (ground truth) is posted to ``/v2/models/{name}/feedback`` by request id.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

Datatype = Literal[
    "BOOL",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "FP16",
    "FP32",
    "FP64",
    "BYTES",
]
NUMERIC_DATATYPES = frozenset(get_args(Datatype)) - {"BOOL", "BYTES"}


#: Most values of one input tensor's data: the ceiling of ``serving.max_rows_per_request``.
MAX_TENSOR_VALUES = 100_000
#: Most input tensors (and requested outputs): the ceiling of ``serving.max_inputs``.
MAX_TENSORS = 256
#: Most entries of a request's ``parameters`` (driftloop reads two).
MAX_PARAMETERS = 32
#: Most entries of an input tensor's ``parameters`` (driftloop reads none).
MAX_INPUT_PARAMETERS = 8


class RequestInput(BaseModel):
    """One input tensor = one column::

    {"name": "carrier", "shape": [2], "datatype": "BYTES", "data": ["UA", "DL"]}

    The list caps are static ceilings checked while validating (the settings' tighter limits
    are checked by :func:`serving.codec.decode` afterwards).
    """

    model_config = ConfigDict(extra="forbid")

    name: str
    shape: list[int] = Field(max_length=8, description="[n] or [n, 1].")
    datatype: Datatype
    parameters: dict[str, Any] | None = Field(
        None, max_length=MAX_INPUT_PARAMETERS, description="Ignored; at most 8 entries."
    )
    data: list[Any] = Field(
        max_length=MAX_TENSOR_VALUES,
        description="The n values in row order (or n one-value lists for shape [n, 1]); "
        "n at most serving.max_rows_per_request (10,000).",
    )


class RequestOutput(BaseModel):
    """An output the caller asks for: ``{"name": "late_probability"}``."""

    name: str
    parameters: dict[str, Any] | None = None


class InferenceRequest(BaseModel):
    """``POST /v2/models/{name}/infer``::

    {"id": "req-1",
     "parameters": {"content_type": "flight", "routing_key": "N14228"},
     "inputs": [
       {"name": "carrier", "shape": [1], "datatype": "BYTES", "data": ["UA"]},
       {"name": "origin", "shape": [1], "datatype": "BYTES", "data": ["EWR"]},
       {"name": "dest", "shape": [1], "datatype": "BYTES", "data": ["IAH"]},
       {"name": "tailnum", "shape": [1], "datatype": "BYTES", "data": ["N14228"]},
       {"name": "scheduled_departure", "shape": [1], "datatype": "BYTES",
        "data": ["2013-01-01T05:15:00-05:00"]},
       {"name": "distance", "shape": [1], "datatype": "FP64", "data": [1400]}]}
    """

    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(
        None, description="Request id; at most serving.max_id_length (128) characters."
    )
    parameters: dict[str, Any] | None = Field(
        None,
        max_length=MAX_PARAMETERS,
        description="content_type (flight | features), routing_key (a string of at most "
        "serving.max_id_length characters) and explain (true: per-feature attributions as the "
        "output 'attributions'); at most 32 entries.",
    )
    inputs: list[RequestInput] = Field(
        max_length=MAX_TENSORS,
        description="One tensor per column; at most serving.max_inputs (32), names unique. "
        "BYTES values at most serving.max_text_length (256) characters.",
    )
    outputs: list[RequestOutput] | None = Field(
        None,
        max_length=MAX_TENSORS,
        description="Outputs wanted (default: all); at most serving.max_inputs.",
    )


class ResponseOutput(BaseModel):
    """``{"name": "late_probability", "shape": [1], "datatype": "FP64", "data": [0.31]}``"""

    name: str
    shape: list[int]
    datatype: Datatype
    parameters: dict[str, Any] | None = None
    data: list[Any]


class InferenceResponse(BaseModel):
    """Answer of an inference::

    {"model_name": "flight-delay", "model_version": "3", "id": "req-1",
     "parameters": {"variant": "champion", "threshold": 0.27, "threshold_source": "version",
                    "lineage_id": "3.1f0c2a9b.77d0e4c1.5a3b9e20"},
     "outputs": [
       {"name": "late_probability", "shape": [1], "datatype": "FP64", "data": [0.31]},
       {"name": "is_late", "shape": [1], "datatype": "INT64", "data": [0]}]}
    """

    model_name: str
    model_version: str
    id: str
    parameters: dict[str, Any] | None = None
    outputs: list[ResponseOutput]


class MetadataTensor(BaseModel):
    """``{"name": "distance", "datatype": "FP64", "shape": [-1]}``"""

    name: str
    datatype: str
    shape: list[int]


class ModelMetadata(BaseModel):
    """``GET /v2/models/{name}``::

    {"name": "flight-delay", "versions": ["3", "4"], "platform": "mlflow_pyfunc",
     "inputs": [{"name": "carrier", "datatype": "BYTES", "shape": [-1]}, ...],
     "outputs": [{"name": "late_probability", "datatype": "FP64", "shape": [-1]}, ...],
     "parameters": {"champion": "3", "challenger": "4", "canary_weight": 10, "mode": "canary",
                    "thresholds": {"3": {"threshold": 0.27, "source": "version"}, ...},
                    "runtimes": {"3": "numpy", "4": "numpy"},
                    "content_types": {"flight": [...], "features": [...]}}}
    """

    name: str
    versions: list[str]
    platform: str
    inputs: list[MetadataTensor]
    outputs: list[MetadataTensor]
    parameters: dict[str, Any] | None = None


class ServerMetadata(BaseModel):
    """``GET /v2``: ``{"name": "driftloop", "version": "0.1.0", "extensions": [...]}``"""

    name: str
    version: str
    extensions: list[str]


class Health(BaseModel):
    """``GET /v2/health/ready``: ``{"status": "ready"|"degraded"|"not_ready", ...}``.

    ``degraded`` (HTTP 200): models are loaded and serving, but the registry could not be read
    at the last reconciliation (the last good models keep serving). ``not_ready`` (HTTP 503): no
    champion is loaded yet.
    """

    status: str
    champion: str | None = None
    challenger: str | None = None
    canary_weight: int = 0
    mode: str = "canary"
    last_error: str | None = None
    last_reconciled_s_ago: float | None = None
    online_features: bool = False


class FeedbackRequest(BaseModel):
    """``POST /v2/models/{name}/feedback`` with ground truth (1 = arrived > 15 min late)::

    {"request_id": "req-1", "labels": [0, 1]}            labels of rows 0..n-1 of a request
    {"prediction_ids": ["req-1:0", "req-2:3"], "labels": [1, 0]}

    Needs the ``feedback`` scope. Each label must be for a prediction that was served (and a
    row below its request's row count): an unknown one is 404 and nothing of the call is
    stored. The first label of a prediction wins; a later one is kept as a conflict.
    """

    model_config = ConfigDict(extra="forbid")

    request_id: str | None = None
    prediction_ids: list[str] | None = None
    labels: list[int] = Field(min_length=1)


class FeedbackResponse(BaseModel):
    """``{"accepted": 2, "conflicts": 0}``: labels stored; of them, labels for predictions this
    replica had already seen labelled differently (stored as conflicts: the first label wins)."""

    accepted: int
    conflicts: int = 0


class WeightRequest(BaseModel):
    """``POST /admin/weight``: ``{"weight": 10, "reason": "start canary"}``"""

    model_config = ConfigDict(extra="forbid")

    weight: int = Field(ge=0, le=100)
    reason: str = ""


class ActionRequest(BaseModel):
    """``POST /admin/promote`` or ``/admin/rollback``:
    ``{"reason": "p95 fine, AUC +0.01", "version": "7"}`` (``version``: the challenger version
    the caller means; 409 when the challenger is another one)"""

    model_config = ConfigDict(extra="forbid")

    reason: str = ""
    metrics: dict[str, Any] | None = None
    version: str | None = Field(None, min_length=1, max_length=32, pattern=r"^[0-9]+$")


class RestoreRequest(BaseModel):
    """``POST /admin/restore``: ``{"to": "3", "reason": "v4 misbehaves"}``. Without ``to`` the
    champion goes back to the version it replaced (recorded at its promotion); ``to`` must be a
    former champion per the audit log (409 otherwise)."""

    model_config = ConfigDict(extra="forbid")

    to: str | None = Field(None, min_length=1, max_length=32, pattern=r"^[0-9]+$")
    reason: str = Field("", max_length=2000)


class LineageResponse(BaseModel):
    """``GET /v2/models/{name}/lineage/{lineage_id}``: what stands behind a prediction::

    {"lineage_id": "3.1f0c2a9b.77d0e4c1.5a3b9e20", "model_name": "flight-delay",
     "model_version": "3", "aliases": ["champion"], "run_id": "4c1f...", "data_rev": "a9e1...",
     "data_hashes": {"flights_2013-02": "..."}, "feature_service": "delay_model_v1",
     "git_commit": "e1c4ee1...", "train_window": "2013-01..2013-03", "threshold": "0.27",
     "links": {"model_version": "http://mlflow/#/models/flight-delay/versions/3",
               "run": "http://mlflow/#/runs/4c1f..."}}
    """

    lineage_id: str
    model_name: str
    model_version: str
    aliases: list[str] = []
    run_id: str | None = None
    data_rev: str | None = None
    data_hashes: Any = None
    feature_service: str | None = None
    git_commit: str | None = None
    train_window: str | None = None
    threshold: str | None = None
    links: dict[str, str] = {}


class ErrorResponse(BaseModel):
    """Every 4xx/5xx: ``{"error": "input 'distance' holds NaN or inf at row 2"}``"""

    error: str
