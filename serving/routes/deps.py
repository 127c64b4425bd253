"""Typed dependencies of the routes (``Annotated[..., Depends(...)]``, as in the FastAPI
full-stack template's ``api/deps.py``).

The app factory puts one :class:`Services` on ``app.state``; the dependencies hand out its parts
(settings, data plane, reconciler, metrics), check the bearer token's scope
(:func:`require_scope`) and read the request body within ``serving.max_body_bytes``.
Dependencies of a route run in the order of its parameters: the scope check comes first, so a
caller without a valid token learns nothing about the body (401/403 before 400/413).

Every dependency is ``async def``: FastAPI runs a plain ``def`` dependency in its thread pool,
one thread hop per dependency per request, which halved throughput and put the p99 at 500 req/s
from 4 ms to over 100 ms (benchmarks/serving.py). None of them blocks.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, TypeVar

from fastapi import Depends, Request
from pydantic import BaseModel, ValidationError

from driftloop.errors import InvalidInputError, PayloadTooLargeError
from driftloop.settings import Settings
from serving.auth import ADMIN, PREDICT, Authenticator
from serving.capture import CaptureWriter
from serving.codec import describe_validation_error
from serving.dataplane import DataPlane
from serving.features import FeatureLookup
from serving.handles import Reconciler
from serving.metrics import ServingMetrics

Body = TypeVar("Body", bound=BaseModel)


@dataclass(frozen=True)
class Services:
    """The components of one app (built by :func:`serving.app.create_app`)."""

    settings: Settings
    plane: DataPlane
    reconciler: Reconciler
    features: FeatureLookup
    capture: CaptureWriter
    feedback: CaptureWriter
    metrics: ServingMetrics
    auth: Authenticator


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def app_settings(request: Request) -> Settings:
    """The settings the app was built with (not the process-wide ``get_settings()``)."""
    return _services(request).settings


async def get_plane(request: Request) -> DataPlane:
    return _services(request).plane


async def get_reconciler(request: Request) -> Reconciler:
    return _services(request).reconciler


async def get_metrics(request: Request) -> ServingMetrics:
    return _services(request).metrics


SettingsDep = Annotated[Settings, Depends(app_settings)]
PlaneDep = Annotated[DataPlane, Depends(get_plane)]
ReconcilerDep = Annotated[Reconciler, Depends(get_reconciler)]
MetricsDep = Annotated[ServingMetrics, Depends(get_metrics)]


def require_scope(scope: str) -> Callable[..., Awaitable[str]]:
    """A dependency that checks the Authorization header for ``scope`` and returns the actor
    name for the audit log (401 without a known token, 403 without the scope)."""

    async def check(request: Request) -> str:
        return _services(request).auth.require(request.headers.get("authorization"), scope)

    # The OpenAPI document marks every route that depends on a scope check as bearer-secured
    # (serving.routes.openapi); a security dependency here would cost a dependency per request.
    check.required_scope = scope  # type: ignore[attr-defined]  # a marker read by openapi.py
    return check


PredictActor = Annotated[str, Depends(require_scope(PREDICT))]
AdminActor = Annotated[str, Depends(require_scope(ADMIN))]


async def read_body(request: Request) -> bytes:
    """The raw body; 413 above ``serving.max_body_bytes`` (by Content-Length before reading)."""
    return await _read_limited(request, _services(request).settings.serving.max_body_bytes)


async def _read_limited(request: Request, limit: int) -> bytes:
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise PayloadTooLargeError(f"body of {length} bytes exceeds {limit} bytes")
    body = await request.body()
    if len(body) > limit:
        raise PayloadTooLargeError(f"body of {len(body)} bytes exceeds {limit} bytes")
    return body


BodyDep = Annotated[bytes, Depends(read_body)]


def json_body(model: type[Body]) -> Callable[..., Awaitable[Body]]:
    """A dependency that parses the (size-checked) body as ``model``; 400 naming the problem."""

    async def parse(body: BodyDep) -> Body:
        try:
            return model.model_validate_json(body or b"{}")
        except ValidationError as err:
            raise InvalidInputError(describe_validation_error(err)) from None

    return parse


@dataclass(frozen=True, slots=True)
class InferenceCall:
    """What an inference route needs, resolved by ONE dependency: the caller (predict scope
    checked first), the size-checked body and the data plane. The inference routes are the hot
    path, and FastAPI solves every dependency separately for every request."""

    actor: str
    body: bytes
    plane: DataPlane


async def inference_call(request: Request) -> InferenceCall:
    services = _services(request)
    actor = services.auth.require(request.headers.get("authorization"), PREDICT)
    body = await _read_limited(request, services.settings.serving.max_body_bytes)
    return InferenceCall(actor, body, services.plane)


inference_call.required_scope = PREDICT  # type: ignore[attr-defined]  # read by openapi.py
InferenceDep = Annotated[InferenceCall, Depends(inference_call)]
