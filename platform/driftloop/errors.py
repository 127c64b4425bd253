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
