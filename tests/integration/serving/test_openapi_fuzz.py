"""Property-based fuzz of the served OpenAPI document against a real ``python -m serving``
(uvicorn on 127.0.0.1, real MLflow, the real pyfunc fake model as champion).

For every operation of ``/openapi.json`` hypothesis (derandomized, a bounded number of examples
per operation) sends: bodies generated from the operation's request schema (the body models that
:func:`serving.routes.openapi.documented_body` puts in the document), the documented examples
with fields replaced by arbitrary JSON (so the requests get past the schema into decoding, dates
and numbers), arbitrary JSON (non-finite floats and integers beyond 64 bits included) and raw
bytes; random path parameters (the served model's name and version among them); no token,
a wrong one or each scope's token; JSON or another content type.

The property: no answer is a server error. A 503 is allowed only where the operation documents
it (OIP v2 readiness answers 503 for a version that is not loaded; flight rows answer 503 while
this server has no online feature store), and then only with a JSON body. Every 4xx is
``{"error": "..."}``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from driftloop.embedded.services import free_port
from driftloop.registry.integrity import register_verified_version
from driftloop.registry.promotion import assign_alias_after_gate
from driftloop.settings import Settings, use_settings
from serving.process import ServerProcess

pytestmark = pytest.mark.integration

TOKENS = {"admin": "admin-secret", "predict": "predict-secret", "feedback": "feedback-secret"}
EXAMPLES_PER_OPERATION = 100


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, mlflow_server: str, logged_models: dict[str, str]
) -> Iterator[tuple[Settings, httpx.Client, str]]:
    settings = Settings(
        state_dir=tmp_path_factory.mktemp("serving-fuzz"),
        log_level="WARNING",
        mlflow={
            "tracking_uri": mlflow_server,
            "registered_model": f"fuzz-{uuid.uuid4().hex[:6]}",
            "experiment": "serving-tests",  # where the fake models are logged (conftest)
        },
        serving={
            "port": free_port(),
            "reconcile_interval_s": 0.5,
            "capture_flush_s": 0.2,
            "max_rows_per_request": 50,
            "max_body_bytes": 100_000,
            "auth": {
                "enabled": True,
                "admin_tokens": [TOKENS["admin"]],
                "predict_tokens": [TOKENS["predict"]],
                "feedback_tokens": [TOKENS["feedback"]],
            },
        },
    )
    use_settings(settings)
    version = register_verified_version(logged_models["good"], None, {}, settings).version
    assign_alias_after_gate(version, "champion", "test fixture", settings=settings)
    try:
        with ServerProcess(settings) as proc, httpx.Client(base_url=proc.url, timeout=30) as c:
            yield settings, c, version
    finally:
        use_settings(None)


# -- JSON schema -> strategy (the subset pydantic writes for the body models) -------------------
def _resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def from_schema(doc: dict[str, Any], schema: dict[str, Any], depth: int = 0) -> Any:
    schema = _resolve(doc, schema)
    if depth > 4:
        return st.none()
    if "anyOf" in schema:
        return st.one_of([from_schema(doc, s, depth + 1) for s in schema["anyOf"]])
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if kind == "string":
        if "pattern" in schema:
            return st.from_regex(schema["pattern"], fullmatch=True)
        return st.text(min_size=schema.get("minLength", 0), max_size=schema.get("maxLength", 40))
    if kind == "integer":
        return st.integers(schema.get("minimum"), schema.get("maximum")) | st.integers()
    if kind == "number":
        return st.floats(allow_nan=False) | st.integers()
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "array":
        items = from_schema(doc, schema.get("items", {}), depth + 1)
        return st.lists(items, min_size=schema.get("minItems", 0), max_size=6)
    if kind == "object" or "properties" in schema:
        props = schema.get("properties", {})
        required = set(schema.get("required", ()))
        fields = {k: from_schema(doc, v, depth + 1) for k, v in props.items()}
        base = st.fixed_dictionaries(
            {k: s for k, s in fields.items() if k in required},
            optional={k: s for k, s in fields.items() if k not in required},
        )
        if schema.get("additionalProperties") is True:
            extra = st.dictionaries(st.text(max_size=12), json_values(), max_size=3)
            return st.builds(lambda a, b: {**b, **a}, base, extra)
        return base
    return json_values()


def json_values() -> st.SearchStrategy[Any]:
    """Any JSON value, including what strict JSON forbids (NaN, Infinity) and numbers no
    float or 64-bit integer holds."""
    scalars = (
        st.none()
        | st.booleans()
        | st.integers()
        | st.sampled_from([10**400, -(10**400), 2**64, 1e308])
        | st.floats()
        | st.text(max_size=30)
        | st.sampled_from(
            ["0001-01-01T00:00:00", "9999-12-31T23:59:00-05:00", "2013-01-01T05:15:00-05:00", ""]
        )
    )
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
        max_leaves=12,
    )


def mutated_examples(examples: list[Any]) -> st.SearchStrategy[Any]:
    """A documented example with one field, one tensor's field or one value replaced."""

    @st.composite
    def mutate(draw: st.DrawFn) -> Any:
        body = json.loads(json.dumps(draw(st.sampled_from(examples))))
        where = draw(st.integers(0, 9))
        tensors = [t for t in body.get("inputs", []) if t.get("data")]
        if tensors and where < 6:  # a value of one column: most requests go deepest
            text = draw(st.booleans())
            same = [t for t in tensors if (t.get("datatype") == "BYTES") == text] or tensors
            tensor = same[draw(st.integers(0, len(same) - 1))]
            i = draw(st.integers(0, len(tensor["data"]) - 1))
            kind = TEXTS if tensor.get("datatype") == "BYTES" else NUMBERS
            tensor["data"][i] = draw(_weighted((3, kind), (1, HOSTILE)))
            return body
        target = draw(st.sampled_from(tensors)) if tensors and where < 8 else body
        key = draw(st.sampled_from([*target, "extra"]))
        target[key] = draw(HOSTILE | json_values())
        return body

    return mutate()


#: Values that once broke (or could break) decoding: numbers beyond FP64 or 64 bits, dates out
#: of range, long texts, wrong types.
# (hypothesis prefers the first elements of sampled_from: the worst come first)
NUMBERS = st.sampled_from([10**400, -(10**400), 2**64, -(2**63) - 1, 1e308, float("inf"), 0.5])
TEXTS = st.sampled_from(
    [
        "0001-01-01T00:00:00",
        "0001-01-01T00:00:00+05:00",
        "9999-12-31T23:59:00-05:00",
        "2262-04-12T00:00:00",
        "not a date",
        "x" * 300,
        "",
    ]
)
HOSTILE = NUMBERS | TEXTS | st.sampled_from([None, True, [], {}])


def _encode(body: Any) -> bytes:
    return body if isinstance(body, bytes) else json.dumps(body, allow_nan=True).encode()


def operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, ops in sorted(doc["paths"].items()):
        for method, op in sorted(ops.items()):
            yield path, method.upper(), op


def _weighted(*choices: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """One of ``choices`` (weight, strategy), in proportion to the weights."""
    table = [strategy for weight, strategy in choices for _ in range(weight)]
    return st.integers(0, len(table) - 1).flatmap(lambda i: table[i])


@st.composite
def envelopes(
    draw: st.DrawFn, model: str, version: str, scope_token: str
) -> tuple[str, str, str | None, str | None]:
    """(model name, version, token, content type): in 7 of 10 examples the right ones for the
    operation, so the body is what gets tested; otherwise anything."""
    if draw(st.integers(0, 9)) < 7:
        return model, version, scope_token, "application/json"
    name = draw(st.sampled_from([model, "nope"]) | st.text(min_size=1, max_size=20))
    ver = draw(st.sampled_from([version, "0", "-1", "9" * 30]) | st.text(min_size=1))
    token = draw(st.sampled_from([None, "guess", *TOKENS.values()]))
    media = draw(
        st.sampled_from(
            [
                None,
                "text/plain",
                "application/json; charset=utf-8",
                "application/x-www-form-urlencoded",
            ]
        )
    )
    return name, ver, token, media


def _scope_token(path: str) -> str:
    if path.startswith("/admin"):
        return TOKENS["admin"]
    return TOKENS["feedback"] if path.endswith("/feedback") else TOKENS["predict"]


def _fuzz(
    client: httpx.Client,
    method: str,
    path: str,
    documented: set[int],
    bodies: st.SearchStrategy[Any],
    envelope: st.SearchStrategy[tuple[str, str, str | None, str | None]],
) -> None:
    """Run the examples of one operation: no 5xx but a documented 503; 4xx as JSON errors."""

    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(sent=envelope, body=bodies)
    def call(sent: tuple[str, str, str | None, str | None], body: Any) -> None:
        name, ver, token, content_type = sent
        url = path.replace("{name}", quote(name, safe="")).replace("{version}", quote(ver, safe=""))
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        if content_type is not None:
            headers["Content-Type"] = content_type
        raw = None if body is None else _encode(body)
        r = client.request(method, url, content=raw, headers=headers)
        where = f"{method} {url} -> {r.status_code} {r.text[:300]}"
        assert r.status_code < 500 or (r.status_code == 503 and 503 in documented), where
        if r.status_code >= 400 and r.status_code != 503:
            assert set(r.json()) == {"error"}, where

    call()


def test_no_operation_of_the_served_openapi_answers_a_server_error(
    served: tuple[Settings, httpx.Client, str],
) -> None:
    settings_, client, version = served
    model = settings_.mlflow.registered_model
    doc = client.get("/openapi.json").json()
    seen = []
    for path, method, op in operations(doc):
        documented = {int(s) for s in op.get("responses", {}) if s.isdigit()}
        content = op.get("requestBody", {}).get("content", {}).get("application/json")
        if content is not None:
            examples = [e["value"] for e in content.get("examples", {}).values()]
            bodies = _weighted(
                (6 if examples else 0, mutated_examples(examples) if examples else st.none()),
                (2, from_schema(doc, content["schema"])),
                (1, json_values()),
                (1, st.binary(max_size=64)),
            )
        else:
            bodies = st.none() | json_values()
        envelope = envelopes(model, version, _scope_token(path))
        _fuzz(client, method, path, documented, bodies, envelope)
        seen.append(f"{method} {path}")
    assert len(seen) >= 15  # every operation of the document was fuzzed
