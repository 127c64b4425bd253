"""Typed dependencies of the routes (``Annotated[..., Depends(...)]``, as in the FastAPI
full-stack template's ``api/deps.py``).

The app factory puts one :class:`Services` on ``app.state``; the dependencies hand out its parts
(settings, data plane, reconciler, metrics), check the bearer token's scope
(:func:`require_scope`) and read the request body within ``serving.max_body_bytes``.
Dependencies of a route run in the order of its parameters: the scope check comes first, so a
caller without a valid token learns nothing about the body (401/403 before 400/413).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, TypeVar

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
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


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def app_settings(services: ServicesDep) -> Settings:
    """The settings the app was built with (not the process-wide ``get_settings()``)."""
    return services.settings


def get_plane(services: ServicesDep) -> DataPlane:
    return services.plane


def get_reconciler(services: ServicesDep) -> Reconciler:
    return services.reconciler


def get_metrics(services: ServicesDep) -> ServingMetrics:
    return services.metrics


SettingsDep = Annotated[Settings, Depends(app_settings)]
PlaneDep = Annotated[DataPlane, Depends(get_plane)]
ReconcilerDep = Annotated[Reconciler, Depends(get_reconciler)]
MetricsDep = Annotated[ServingMetrics, Depends(get_metrics)]

#: Documents the bearer scheme in OpenAPI; the check itself is the Authenticator's (it tells a
#: missing, malformed and unknown token apart).
_bearer = HTTPBearer(auto_error=False, scheme_name="bearer")
BearerDoc = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def require_scope(scope: str) -> Callable[..., str]:
    """A dependency that checks the Authorization header for ``scope`` and returns the actor
    name for the audit log (401 without a known token, 403 without the scope)."""

    def check(request: Request, services: ServicesDep, _doc: BearerDoc) -> str:
        return services.auth.require(request.headers.get("authorization"), scope)

    return check


PredictActor = Annotated[str, Depends(require_scope(PREDICT))]
AdminActor = Annotated[str, Depends(require_scope(ADMIN))]


async def read_body(request: Request, settings: SettingsDep) -> bytes:
    """The raw body; 413 above ``serving.max_body_bytes`` (by Content-Length before reading)."""
    limit = settings.serving.max_body_bytes
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
