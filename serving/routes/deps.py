"""Typed dependencies of the routes (``Annotated[..., Depends(...)]``, as in the FastAPI
full-stack template's ``api/deps.py``).

The app factory puts one :class:`Services` on ``app.state``; the dependencies hand out its parts
(settings, data plane, reconciler, metrics), check the bearer token's scope
(:func:`require_scope`) and read the request body within ``serving.max_body_bytes``.
Dependencies of a route run in the order of its parameters: the scope check comes first, so a
caller without a valid token learns nothing about the body (401/403 before 400/413).

Every route with a scope (inference, feedback, admin) checks, in this order:

1. **Host** (auth off only, i.e. development on loopback): only ``127.0.0.1``, ``localhost`` and
   ``[::1]`` (any port) are served, else 403. A web page the developer visits could otherwise
   rebind its own DNS name to 127.0.0.1 and read or move models (DNS rebinding). With auth on
   the Host is not checked: the server is reached under any name (ingress, Service DNS, pod IP)
   and a cross-site page cannot attach the bearer token, which is what protects it. The
   metadata, readiness and metrics routes check the Host too (through :func:`get_plane`);
   ``/v2``, ``/v2/health/live`` and the docs, which reveal nothing of this server, do not.
2. **Token and scope** (auth on): 401 / 403.
3. **Rate limit** per caller (:mod:`serving.ratelimit`): the token (auth on) or the client
   address (auth off); 429 with ``Retry-After``, counted in ``driftloop_rate_limited_total``.
4. **Content type** of every POST: ``application/json`` (parameters such as ``charset``
   allowed), else 415. A cross-site form or ``no-cors`` fetch cannot send it, so a page the
   developer visits cannot promote a model on the auth-off development server.
5. **Body size**: 413 above ``serving.max_body_bytes``, by Content-Length before reading and by
   counting while the body streams in, so a chunked body is cut off at the limit, never
   buffered whole.
6. **Slow bodies**: at most ``serving.max_body_reads_per_caller`` bodies of one caller (the
   rate limit's key) stream in at once, more get 429; a body not complete within
   ``serving.body_timeout_s`` gets 408. With uvicorn's ``limit_concurrency``
   (``serving.max_concurrency``, 503 above it; :mod:`serving.__main__`) one caller cannot hold
   the replica's memory with slow uploads: at most max_concurrency x max_body_bytes of bodies
   are ever held, and one token's share is max_body_reads_per_caller x max_body_bytes.

Every dependency is ``async def``: FastAPI runs a plain ``def`` dependency in its thread pool,
one thread hop per dependency per request, which halved throughput and put the p99 at 500 req/s
from 4 ms to over 100 ms (benchmarks/serving.py). None of them blocks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, TypeVar

from fastapi import Depends, Request
from pydantic import BaseModel, ValidationError

from driftloop.errors import (
    InvalidInputError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RequestTimeoutError,
    TooManyRequestsError,
    UnsupportedMediaTypeError,
)
from driftloop.settings import Settings
from serving.auth import ADMIN, PREDICT, Authenticator
from serving.capture import CaptureWriter
from serving.codec import Containers, check_containers, describe_validation_error
from serving.dataplane import SYNTHETIC_HEADER, DataPlane
from serving.features import FeatureLookup
from serving.handles import Reconciler
from serving.metrics import ServingMetrics
from serving.ratelimit import RateLimiter

Body = TypeVar("Body", bound=BaseModel)

#: Host names (without port) served with auth off: this machine's loopback names.
LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "[::1]"})
JSON_MEDIA_TYPE = "application/json"
#: Where :func:`admit_caller` leaves the caller's key in the ASGI scope for the body reader.
CALLER_KEY = "driftloop.caller"
#: JSON arrays and objects an admin body (weight, promote, rollback) may hold.
ADMIN_CONTAINERS = Containers(arrays=1_000, objects=1_000)


class BodyReads:
    """Request bodies streaming in, per caller. Used on the event loop only (no lock); a caller
    with none in flight holds no entry."""

    def __init__(self) -> None:
        self._reading: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._reading)

    def reading(self, caller: str) -> int:
        return self._reading.get(caller, 0)

    def total(self) -> int:
        return sum(self._reading.values())

    def enter(self, caller: str, limit: int) -> None:
        """Count one more body of ``caller``; 429 when it already has ``limit`` in flight."""
        current = self._reading.get(caller, 0)
        if current >= limit:
            raise TooManyRequestsError(
                f"{current} request bodies of this caller are still being received (at most "
                f"{limit} at once); retry when one is complete",
                1.0,
            )
        self._reading[caller] = current + 1

    def exit(self, caller: str) -> None:
        current = self._reading.get(caller, 0)
        if current <= 1:
            self._reading.pop(caller, None)
        else:
            self._reading[caller] = current - 1


@dataclass(frozen=True)
class Services:
    """The components of one app (built by :func:`serving.app.create_app`). ``limiter``: the
    per-caller rate limit of ``settings.serving`` (None when ``rate_limit_per_s`` is 0);
    ``body_reads``: the bodies streaming in per caller."""

    settings: Settings
    plane: DataPlane
    reconciler: Reconciler
    features: FeatureLookup
    capture: CaptureWriter
    feedback: CaptureWriter
    metrics: ServingMetrics
    auth: Authenticator
    limiter: RateLimiter | None = field(default=None)
    body_reads: BodyReads = field(default_factory=BodyReads)

    def __post_init__(self) -> None:
        serving = self.settings.serving
        if self.limiter is None and serving.rate_limit_per_s > 0:
            limiter = RateLimiter(serving.rate_limit_per_s, serving.rate_limit_burst)
            object.__setattr__(self, "limiter", limiter)


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def app_settings(request: Request) -> Settings:
    """The settings the app was built with (not the process-wide ``get_settings()``)."""
    return _services(request).settings


async def get_plane(request: Request) -> DataPlane:
    """The data plane; with auth off also the Host check (the metadata, readiness and metrics
    routes use it: a rebinding page must not read them either)."""
    services = _services(request)
    if not services.auth.enabled:
        check_host(request)
    return services.plane


async def get_reconciler(request: Request) -> Reconciler:
    return _services(request).reconciler


async def get_metrics(request: Request) -> ServingMetrics:
    return _services(request).metrics


SettingsDep = Annotated[Settings, Depends(app_settings)]
PlaneDep = Annotated[DataPlane, Depends(get_plane)]
ReconcilerDep = Annotated[Reconciler, Depends(get_reconciler)]
MetricsDep = Annotated[ServingMetrics, Depends(get_metrics)]


def host_name(host: str) -> str:
    """The name part of a ``Host`` header, lower case: ``localhost:8000`` -> ``localhost``,
    ``[::1]:8000`` -> ``[::1]``."""
    host = host.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        return host if end < 0 else host[: end + 1]
    return host.partition(":")[0]


def check_host(request: Request) -> None:
    """403 unless the ``Host`` header names this machine's loopback (used with auth off)."""
    host = request.headers.get("host")
    if host is None or host_name(host) not in LOOPBACK_NAMES:
        shown = "none" if host is None else repr(host[:100])
        raise PermissionDeniedError(
            f"Host {shown} is not served: with auth off only 127.0.0.1, localhost and [::1] "
            "are (DNS rebinding protection)"
        )


def admit_caller(services: Services, request: Request, scope: str) -> str:
    """Host (auth off), token and ``scope``, then the caller's rate limit; returns the actor.
    Every route with a scope admits its caller through here (steps 1-3 of the module). The
    caller's key (the actor with auth on, the client address with auth off) is left in the
    request's scope for the body reader (step 6)."""
    auth = services.auth
    if not auth.enabled:
        check_host(request)
    actor = auth.require(request.headers.get("authorization"), scope)
    key = actor if auth.enabled else _client_host(request)
    request.scope[CALLER_KEY] = key
    limiter = services.limiter
    if limiter is not None:
        wait_s = limiter.wait_s(key)
        if wait_s > 0.0:
            services.metrics.rate_limited.inc()
            raise TooManyRequestsError(
                f"rate limit of {limiter.rate:g} requests/s (burst {limiter.burst:g}) "
                f"exceeded; retry in {wait_s:.3f} s",
                wait_s,
            )
    return actor


def _client_host(request: Request) -> str:
    client = request.client
    return client.host if client is not None else "unknown"


def require_scope(scope: str) -> Callable[..., Awaitable[str]]:
    """A dependency that checks the Authorization header for ``scope`` and returns the actor
    name for the audit log (401 without a known token, 403 without the scope); also the Host
    with auth off (403) and the caller's rate limit (429), see the module docstring."""

    async def check(request: Request) -> str:
        return admit_caller(_services(request), request, scope)

    # The OpenAPI document marks every route that depends on a scope check as bearer-secured
    # (serving.routes.openapi); a security dependency here would cost a dependency per request.
    check.required_scope = scope  # type: ignore[attr-defined]  # a marker read by openapi.py
    return check


PredictActor = Annotated[str, Depends(require_scope(PREDICT))]
AdminActor = Annotated[str, Depends(require_scope(ADMIN))]


async def read_body(request: Request) -> bytes:
    """The raw JSON body: 415 unless declared ``application/json``, 413 above
    ``serving.max_body_bytes`` (by Content-Length before reading, and while streaming), 429 /
    408 for a caller with too many bodies in flight / a body not complete in time."""
    return await _read_limited(request, _services(request))


def check_json(request: Request) -> None:
    """415 unless the request declares ``Content-Type: application/json``."""
    declared = request.headers.get("content-type")
    media = "" if declared is None else declared.partition(";")[0].strip().lower()
    if media != JSON_MEDIA_TYPE:
        shown = "none" if declared is None else repr(declared[:100])
        raise UnsupportedMediaTypeError(f"Content-Type must be {JSON_MEDIA_TYPE}, got {shown}")


async def _read_limited(request: Request, services: Services) -> bytes:
    """The body within ``serving.max_body_bytes``, counted while it streams in (a chunked body
    has no Content-Length): at most that many bytes (plus one chunk) are ever held; received
    within ``serving.body_timeout_s`` (else 408), while the caller has fewer than
    ``serving.max_body_reads_per_caller`` other bodies streaming in (else 429)."""
    check_json(request)
    serving = services.settings.serving
    limit = serving.max_body_bytes
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise PayloadTooLargeError(f"body of {length} bytes exceeds {limit} bytes")
    caller = request.scope.get(CALLER_KEY) or _client_host(request)
    reads = services.body_reads
    reads.enter(caller, serving.max_body_reads_per_caller)
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(serving.body_timeout_s):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLargeError(
                        f"body exceeds {limit} bytes (counted while streaming)"
                    )
                chunks.append(chunk)
    except TimeoutError:
        raise RequestTimeoutError(
            f"request body not received within {serving.body_timeout_s:g} s ({size} bytes arrived)"
        ) from None
    finally:
        reads.exit(caller)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


BodyDep = Annotated[bytes, Depends(read_body)]


def json_body(model: type[Body]) -> Callable[..., Awaitable[Body]]:
    """A dependency that parses the (size-checked) body as ``model``; 400 naming the problem."""

    async def parse(body: BodyDep) -> Body:
        check_containers(body, ADMIN_CONTAINERS)
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
    #: the X-Driftloop-Synthetic header (load-test / probe traffic) and, only with it, the
    #: Authorization header the data plane checks for the admin scope (None: not marked)
    synthetic: str | None = None
    authorization: str | None = None


async def inference_call(request: Request) -> InferenceCall:
    services = _services(request)
    actor = admit_caller(services, request, PREDICT)
    body = await _read_limited(request, services)
    headers = request.headers
    mark = headers.get(SYNTHETIC_HEADER)
    if mark is None and b'"synthetic"' not in body:  # real traffic: nothing more to read
        return InferenceCall(actor, body, services.plane)
    return InferenceCall(actor, body, services.plane, mark, headers.get("authorization"))


inference_call.required_scope = PREDICT  # type: ignore[attr-defined]  # read by openapi.py
InferenceDep = Annotated[InferenceCall, Depends(inference_call)]
