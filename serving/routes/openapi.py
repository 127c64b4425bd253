"""OpenAPI documentation of the routes: error responses, request bodies with examples, and the
document itself.

The inference, feedback and admin routes read their bodies raw (size limit first, then the
transport-free core decodes them), so FastAPI cannot see the body models: :func:`documented_body`
documents one by reference, and :func:`openapi_document` adds the referenced models.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from serving.examples import features_request, flight_request
from serving.schemas import (
    ActionRequest,
    ErrorResponse,
    FeedbackRequest,
    InferenceRequest,
    RestoreRequest,
    WeightRequest,
)

JSON = "application/json"
#: Error answers of the routes that take a body or a model name (403 also: a Host other than
#: loopback with auth off; 415: a POST not declared application/json; 429: rate limited).
ERRORS: dict[int | str, dict[str, Any]] = {
    s: {"model": ErrorResponse} for s in (400, 401, 403, 404, 409, 413, 415, 429, 503)
}
#: Example bodies by model: each is valid (a test posts them all).
EXAMPLES: dict[type[BaseModel], dict[str, dict[str, Any]]] = {
    InferenceRequest: {
        "flight": {
            "summary": "request fields; features from the online store",
            "value": flight_request(1, routing_key="N14228") | {"id": "req-1"},
        },
        "features": {
            "summary": "complete feature rows; no online lookup",
            "value": features_request(2, request_id="req-2"),
        },
    },
    FeedbackRequest: {
        "by_request": {"value": {"request_id": "req-1", "labels": [1]}},
        "by_prediction": {"value": {"prediction_ids": ["req-2:0", "req-2:1"], "labels": [0, 1]}},
    },
    WeightRequest: {"start": {"value": {"weight": 10, "reason": "start canary"}}},
    ActionRequest: {
        "promote": {"value": {"reason": "p95 fine, AUC +0.01", "metrics": {"auc": 0.71}}}
    },
    RestoreRequest: {
        "previous": {
            "summary": "back to the champion the current one replaced",
            "value": {"reason": "v4 misses late flights in production"},
        },
        "to": {
            "summary": "back to a named former champion",
            "value": {"to": "3", "reason": "back to the last good one"},
        },
    },
}


def documented_body(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` of a route whose JSON body is ``model`` (with its examples)."""
    content: dict[str, Any] = {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}
    if model in EXAMPLES:
        content["examples"] = EXAMPLES[model]
    return {"requestBody": {"required": True, "content": {JSON: content}}}


def openapi_document(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document of ``app`` including the body models of :data:`EXAMPLES`."""
    schema = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    _, top = models_json_schema(
        [(m, "validation") for m in EXAMPLES], ref_template="#/components/schemas/{model}"
    )
    components = schema.setdefault("components", {})
    for key, value in top.get("$defs", {}).items():
        components.setdefault("schemas", {}).setdefault(key, value)
    components.setdefault("securitySchemes", {})["bearer"] = {"type": "http", "scheme": "bearer"}
    for route in app.routes:
        if isinstance(route, APIRoute) and _secured(route.dependant):
            for method in route.methods or ():
                operation = schema["paths"][route.path_format][method.lower()]
                operation["security"] = [{"bearer": []}]
    return schema


def _secured(dependant: Any) -> bool:
    """Whether a route depends (directly or below) on a scope check (``deps.require_scope``)."""
    return any(
        hasattr(dep.call, "required_scope") or _secured(dep) for dep in dependant.dependencies
    )
