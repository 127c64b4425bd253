"""The inference routes without the framework's per-request machinery: a pure ASGI middleware.

``POST /v2/models/{name}/infer`` and ``POST /v2/models/{name}/versions/{version}/infer`` are
the hot path. Through FastAPI each request also paid for the router's match over every route,
the exception and exit-stack middlewares, the request/response wrappers and the dependency
solver (~25 % of a single-row request's time in the server, benchmarks/serving.py). This
middleware answers those two paths itself, with the SAME code the routes run: the dependency
:func:`serving.routes.deps.inference_call` (host, token and scope, rate limit, content type,
body limits, the synthetic mark) and the route functions of :mod:`serving.routes.inference`;
an exception becomes the answer of the app's own handler for it (:mod:`serving.routes.errors`:
``{"error": ...}``, 4xx counted, ``Retry-After`` on 429). Every other request goes to FastAPI,
and the routes stay registered there for the OpenAPI document.

A pure ASGI middleware (no ``BaseHTTPMiddleware``, which wraps every request in tasks and
streams): it sits inside Starlette's ``ServerErrorMiddleware``, so anything unexpected is still
a logged 500.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from serving.routes import inference
from serving.routes.deps import inference_call

#: ``/v2/models/{name}/infer`` and ``/v2/models/{name}/versions/{version}/infer`` (a path
#: parameter is one segment, as Starlette's ``{name}``)
INFER_PATH = re.compile(r"/v2/models/([^/]+)/(?:versions/([^/]+)/)?infer")

Handler = Callable[[Request, Exception], Awaitable[Response]]


class InferenceFastPath:
    """ASGI middleware answering the inference routes (see the module)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        match = INFER_PATH.fullmatch(scope["path"])
        if match is None:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        name, version = match.group(1), match.group(2)
        try:
            call = await inference_call(request)
            if version is None:
                response = await inference.infer(name, call)
            else:
                response = await inference.infer_version(name, version, call)
        except Exception as exc:
            handler = _handler(scope["app"].exception_handlers, exc)
            if handler is None:
                raise
            response = await handler(request, exc)
        await response(scope, receive, send)


def _handler(handlers: dict[Any, Handler], exc: Exception) -> Handler | None:
    """The app's handler of ``exc``: the one of its nearest class (as Starlette looks it up)."""
    for cls in type(exc).__mro__:
        if cls in handlers:
            return handlers[cls]
    return None
