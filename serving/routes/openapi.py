"""OpenAPI documentation of the routes: error responses, request bodies with examples, the
document itself, and the pages that show it (``/docs``: Swagger UI, ``/redoc``: ReDoc).

The inference, feedback and admin routes read their bodies raw (size limit first, then the
transport-free core decodes them), so FastAPI cannot see the body models: :func:`documented_body`
documents one by reference, and :func:`openapi_document` adds the referenced models. Docstrings
are written for Sphinx; the document carries them as plain text (:func:`plain_text`).

The pages load Swagger UI and ReDoc from ``serving/static`` (vendored from npm, licences beside
them and in NOTICE), never from a CDN: the docs open on a machine without internet, and their
Content-Security-Policy lets them load nothing from elsewhere. Like ``/openapi.json`` they need
no token and check no Host (they reveal nothing of this server); "Try it out" sends the bearer
token given under "Authorize", so every documented route keeps its own scope check.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.responses import HTMLResponse

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
            "summary": "flight fields; features looked up in the online store",
            "description": "One flight as the request fields of a booking system: carrier, "
            "origin, dest, tailnum, scheduled departure (ISO-8601 with offset) and distance. "
            "driftloop derives the hour and weekday and fetches weather, plane and route "
            "features from the online store by carrier, origin and tailnum.",
            "value": flight_request(1, content_type="flight", routing_key="N14228")
            | {"id": "req-1"},
        },
        "features": {
            "summary": "complete feature rows; no online lookup",
            "description": "Two rows holding every model input column (no online store "
            "needed): what a batch caller with its own features sends.",
            "value": features_request(2, request_id="req-2", content_type="features"),
        },
    },
    FeedbackRequest: {
        "by_request": {
            "summary": "labels of the rows of request req-1, in row order",
            "value": {"request_id": "req-1", "labels": [1]},
        },
        "by_prediction": {
            "summary": "labels by prediction id (<request id>:<row>)",
            "value": {"prediction_ids": ["req-2:0", "req-2:1"], "labels": [0, 1]},
        },
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


def openapi_document(app: FastAPI, model_name: str = "flight-delay") -> dict[str, Any]:
    """The OpenAPI document of ``app`` including the body models of :data:`EXAMPLES`, every
    description as plain text, and ``model_name`` (the served model) as the default of each
    ``{name}`` path parameter, so "Try it out" works as it opens."""
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
    for operations in schema["paths"].values():
        for operation in operations.values():
            for param in operation.get("parameters", ()):
                if param.get("in") == "path" and param.get("name") == "name":
                    param["description"] = "Registered model name (the one this server serves)."
                    param["example"] = model_name
                    param["schema"]["default"] = model_name
    _plain_descriptions(schema)
    return schema


_ROLE = re.compile(r":[a-z]+:`~?\.?([^`]+)`")
_LITERAL = re.compile(r"``([^`]+)``")


def plain_text(text: str) -> str:
    """A Sphinx docstring as plain text: ``:class:`serving.codec.X``` -> ``serving.codec.X``,
    double-backquoted literals unquoted, a literal block's ``::`` -> ``:``."""
    text = _ROLE.sub(r"\1", text)
    text = _LITERAL.sub(r"\1", text)
    return re.sub(r"(?<=\S)::(?=\s*$)", ":", text, flags=re.MULTILINE)


def _plain_descriptions(node: Any) -> None:
    """Every ``description`` below ``node`` as plain text, in place (examples left alone)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "description" and isinstance(value, str):
                node[key] = plain_text(value)
            elif key not in ("example", "examples", "default"):
                _plain_descriptions(value)
    elif isinstance(node, list):
        for item in node:
            _plain_descriptions(item)


def _secured(dependant: Any) -> bool:
    """Whether a route depends (directly or below) on a scope check (``deps.require_scope``)."""
    return any(
        hasattr(dep.call, "required_scope") or _secured(dep) for dep in dependant.dependencies
    )


#: The vendored documentation assets (package data of ``serving``; see NOTICE).
STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
STATIC_PATH = "/static"
#: The docs pages load only this server's assets (and their own inline start-up script);
#: ReDoc runs its search in a worker from a blob.
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)

docs_router = APIRouter(include_in_schema=False)


def static_files() -> StaticFiles:
    """The assets of the docs pages (mounted at :data:`STATIC_PATH` by the app factory);
    refuses to start when they were not installed with the package."""
    return StaticFiles(directory=STATIC_DIR, check_dir=True)


def _page(response: HTMLResponse) -> HTMLResponse:
    response.headers["Content-Security-Policy"] = DOCS_CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _openapi_url(request: Request) -> str:
    return str(request.app.openapi_url or "/openapi.json")


@docs_router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    """Swagger UI over ``/openapi.json`` from this server's own assets."""
    return _page(
        get_swagger_ui_html(
            openapi_url=_openapi_url(request),
            title=f"{request.app.title} - Swagger UI",
            swagger_js_url=f"{STATIC_PATH}/swagger-ui/swagger-ui-bundle.js",
            swagger_css_url=f"{STATIC_PATH}/swagger-ui/swagger-ui.css",
            swagger_favicon_url=f"{STATIC_PATH}/swagger-ui/favicon-32x32.png",
            oauth2_redirect_url="/docs/oauth2-redirect",
            swagger_ui_parameters={
                "persistAuthorization": True,  # the token survives a reload of the page
                "displayRequestDuration": True,
                "defaultModelsExpandDepth": 0,
                "tryItOutEnabled": True,
                "validatorUrl": None,  # the default validator is an online service
            },
        )
    )


@docs_router.get("/docs/oauth2-redirect")
async def swagger_ui_redirect() -> HTMLResponse:
    return _page(get_swagger_ui_oauth2_redirect_html())


@docs_router.get("/redoc")
async def redoc(request: Request) -> HTMLResponse:
    """ReDoc over ``/openapi.json`` from this server's own assets (no web fonts)."""
    return _page(
        get_redoc_html(
            openapi_url=_openapi_url(request),
            title=f"{request.app.title} - ReDoc",
            redoc_js_url=f"{STATIC_PATH}/redoc/redoc.standalone.js",
            redoc_favicon_url=f"{STATIC_PATH}/swagger-ui/favicon-32x32.png",
            with_google_fonts=False,
        )
    )
