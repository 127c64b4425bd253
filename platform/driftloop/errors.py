"""One exception hierarchy. Each class knows its HTTP status; the CLI prints the message and
exits 1, the API answers ``{"error": message}`` with the status."""

from __future__ import annotations


class DriftloopError(Exception):
    """Base of every expected error. ``str(err)`` is one readable line."""

    status_code: int = 500


class InvalidInputError(DriftloopError, ValueError):
    """The caller sent something malformed (bad month, wrong shape, NaN ...)."""

    status_code = 400


class AuthenticationError(DriftloopError):
    status_code = 401


class PermissionDeniedError(DriftloopError, PermissionError):
    status_code = 403


class NotFoundError(DriftloopError, LookupError):
    """A model, version, entity, run or partition does not exist."""

    status_code = 404


class ConflictError(DriftloopError):
    """The request clashes with current state (e.g. promote with no challenger)."""

    status_code = 409


class PayloadTooLargeError(InvalidInputError):
    status_code = 413


class UnsupportedMediaTypeError(InvalidInputError):
    """A body not declared as JSON (a cross-site form or no-CORS post cannot declare it)."""

    status_code = 415


class TooManyRequestsError(DriftloopError):
    """A caller above its rate limit; ``retry_after_s``: when a request would pass again."""

    status_code = 429

    def __init__(self, message: str, retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class DataQualityError(DriftloopError):
    """Data failed its contract beyond the configured limit."""

    status_code = 422


class ConfigurationError(DriftloopError, ValueError):
    """Settings that would make a component unsafe or unusable: it refuses to start."""


class ServiceUnavailableError(DriftloopError, ConnectionError):
    """A backing service (MLflow, Prefect, online store) cannot be reached."""

    status_code = 503


class TrainingError(DriftloopError, RuntimeError):
    """Training cannot proceed (no data, NaN loss ...)."""

    status_code = 422


class ModelIntegrityError(DriftloopError):
    """A model version's artifact does not match the content hash recorded when it was
    registered (or none was recorded): it is refused, never loaded."""

    status_code = 409


class RequestTimeoutError(InvalidInputError):
    """A request body that did not arrive completely in time (a slow upload holds memory and a
    connection): 408."""

    status_code = 408
