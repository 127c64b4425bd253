"""The one place where exceptions become HTTP answers, always ``{"error": "..."}``.

* :class:`driftloop.errors.DriftloopError` (and subclasses): its ``status_code`` and message;
  4xx are counted in ``driftloop_rejected_requests_total``, 5xx are logged; a 429
  (:class:`driftloop.errors.TooManyRequestsError`) carries ``Retry-After`` (seconds);
* request validation (FastAPI's own parameter checks): 400 naming the first problem;
* Starlette HTTP errors (unknown route 404, wrong method 405): their status and detail;
* anything else: a logged 500 that names only the exception type.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from driftloop.errors import DriftloopError, TooManyRequestsError
from serving.codec import describe_errors
from serving.metrics import ServingMetrics
from serving.ratelimit import retry_after_header

logger = logging.getLogger(__name__)


def error_response(
    status: int, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def add_error_handlers(app: FastAPI, metrics: ServingMetrics) -> None:
    """Register the handlers on ``app``; rejected requests are counted in ``metrics``."""

    async def driftloop_error(request: Request, exc: Exception) -> JSONResponse:
        status = exc.status_code if isinstance(exc, DriftloopError) else 500
        if status >= 500:
            logger.error("%s %s: %s", request.method, request.url.path, exc)
        else:
            metrics.rejected.labels(str(status)).inc()
        if isinstance(exc, TooManyRequestsError):
            retry = {"Retry-After": retry_after_header(exc.retry_after_s)}
            return error_response(status, str(exc), retry)
        return error_response(status, str(exc))

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        errors = exc.errors() if isinstance(exc, RequestValidationError) else []
        metrics.rejected.labels("400").inc()
        return error_response(400, describe_errors(errors))

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, HTTPException):
            return error_response(exc.status_code, str(exc.detail))
        return await unexpected(request, exc)

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(500, f"internal server error ({type(exc).__name__})")

    app.add_exception_handler(DriftloopError, driftloop_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)
