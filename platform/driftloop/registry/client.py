"""The MLflow registry adapter: the only place that talks to ``MlflowClient``.

Aliases only, never stages: ``champion`` is what serves, ``challenger`` is the canary, and the
registered-model tag ``driftloop.canary_weight`` holds the challenger's share (integer percent).
Every call fails fast with :class:`ServiceUnavailableError` when MLflow cannot be reached
(MLflow's own client would otherwise retry for minutes).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx

from driftloop.errors import NotFoundError, ServiceUnavailableError
from driftloop.settings import Settings, get_settings

if TYPE_CHECKING:
    from mlflow import MlflowClient

logger = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
WEIGHT_TAG = "driftloop.canary_weight"
MODE_TAG = "driftloop.canary_mode"
#: ``"{ISO start}|{challenger version}"`` of the running rollout
ROLLOUT_TAG = "driftloop.rollout_started"


@dataclass(frozen=True)
class VersionInfo:
    """What driftloop needs of one model version."""

    name: str
    version: str
    run_id: str | None
    source: str
    tags: dict[str, str] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


def configure_client_env(settings: Settings) -> None:
    # Short, bounded retries: an unreachable registry must surface as an error, not a hang.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault(
        "MLFLOW_HTTP_REQUEST_TIMEOUT", str(int(settings.mlflow.request_timeout_s))
    )


def ping(settings: Settings | None = None, timeout: float = 3.0) -> None:
    """Raise ServiceUnavailableError unless the tracking server answers /health."""
    settings = settings or get_settings()
    uri = settings.mlflow.uri
    if not uri.startswith("http"):
        return  # a file or database store is always "reachable"
    try:
        response = httpx.get(f"{uri.rstrip('/')}/health", timeout=timeout)
    except httpx.HTTPError as exc:
        raise ServiceUnavailableError(
            f"MLflow is unreachable at {uri} ({type(exc).__name__}): start it with "
            "`driftloop up` or set DRIFTLOOP_MLFLOW__TRACKING_URI"
        ) from None
    if response.status_code != 200:
        raise ServiceUnavailableError(f"MLflow at {uri} is unhealthy: HTTP {response.status_code}")


def get_client(settings: Settings | None = None, check: bool = True) -> MlflowClient:
    """An MlflowClient for the configured tracking server (pinged first when ``check``)."""
    settings = settings or get_settings()
    configure_client_env(settings)
    if check:
        ping(settings)
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=settings.mlflow.uri, registry_uri=settings.mlflow.uri)


def _info(mv: Any) -> VersionInfo:
    return VersionInfo(
        name=mv.name,
        version=str(mv.version),
        run_id=mv.run_id,
        source=mv.source,
        tags=dict(mv.tags or {}),
        aliases=tuple(getattr(mv, "aliases", ()) or ()),
    )


def _is_not_found(exc: Exception) -> bool:
    code = getattr(exc, "error_code", "")
    return code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND") or "not found" in str(exc).lower()


def ensure_registered_model(client: MlflowClient, name: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException as exc:
        if not _is_not_found(exc):
            raise
        client.create_registered_model(
            name, description="P(arrival delay > 15 min) for NYC flights; served by driftloop."
        )


def register_version(
    model_uri: str,
    run_id: str | None,
    tags: dict[str, str],
    settings: Settings | None = None,
    name: str | None = None,
) -> VersionInfo:
    """Register ``model_uri`` as a new version; on any failure, no half version stays behind."""
    settings = settings or get_settings()
    name = name or settings.mlflow.registered_model
    client = get_client(settings)
    ensure_registered_model(client, name)
    mv = client.create_model_version(name, source=model_uri, run_id=run_id, tags=tags)
    if str(mv.status) != "READY":
        delete_version(mv.version, settings, name)
        raise ServiceUnavailableError(f"model version {mv.version} ended {mv.status}: removed")
    logger.info("registered %s version %s", name, mv.version)
    return _info(mv)


def delete_version(version: str, settings: Settings | None = None, name: str | None = None) -> None:
    settings = settings or get_settings()
    name = name or settings.mlflow.registered_model
    try:
        get_client(settings, check=False).delete_model_version(name, str(version))
    except Exception:  # best effort cleanup
        logger.warning("could not delete %s version %s", name, version, exc_info=True)


def get_version(
    version: str, settings: Settings | None = None, name: str | None = None
) -> VersionInfo:
    from mlflow.exceptions import MlflowException

    settings = settings or get_settings()
    name = name or settings.mlflow.registered_model
    try:
        return _info(get_client(settings).get_model_version(name, str(version)))
    except MlflowException as exc:
        if _is_not_found(exc):
            raise NotFoundError(f"model {name} has no version {version}") from None
        raise


def get_alias(
    alias: str, settings: Settings | None = None, name: str | None = None
) -> VersionInfo | None:
    """The version an alias points at, or None when the alias (or the model) is unset."""
    from mlflow.exceptions import MlflowException

    settings = settings or get_settings()
    name = name or settings.mlflow.registered_model
    try:
        return _info(get_client(settings).get_model_version_by_alias(name, alias))
    except MlflowException as exc:
        if _is_not_found(exc) or "alias" in str(exc).lower():
            return None
        raise


def set_alias(
    alias: str, version: str, settings: Settings | None = None, name: str | None = None
) -> None:
    settings = settings or get_settings()
    name = name or settings.mlflow.registered_model
    get_client(settings).set_registered_model_alias(name, alias, str(version))


def delete_alias(alias: str, settings: Settings | None = None, name: str | None = None) -> None:
    from mlflow.exceptions import MlflowException

    settings = settings or get_settings()
    name = name or settings.mlflow.registered_model
    try:
        get_client(settings).delete_registered_model_alias(name, alias)
    except MlflowException as exc:
        if not (_is_not_found(exc) or "alias" in str(exc).lower()):
            raise


def set_version_tags(
    version: str, tags: dict[str, str], settings: Settings | None = None, name: str | None = None
) -> None:
    settings = settings or get_settings()
    name = name or settings.mlflow.registered_model
    client = get_client(settings)
    for key, value in tags.items():
        client.set_model_version_tag(name, str(version), key, str(value))


def list_versions(settings: Settings | None = None, name: str | None = None) -> list[VersionInfo]:
    settings = settings or get_settings()
    name = name or settings.mlflow.registered_model
    found = get_client(settings).search_model_versions(f"name = '{name}'")
    return sorted((_info(mv) for mv in found), key=lambda v: int(v.version))


def model_tags(settings: Settings | None = None, name: str | None = None) -> dict[str, str]:
    """Registered-model tags ({} when the model does not exist yet)."""
    from mlflow.exceptions import MlflowException

    settings = settings or get_settings()
    name = name or settings.mlflow.registered_model
    try:
        return dict(get_client(settings).get_registered_model(name).tags or {})
    except MlflowException as exc:
        if _is_not_found(exc):
            return {}
        raise


def set_model_tag(
    key: str, value: str, settings: Settings | None = None, name: str | None = None
) -> None:
    settings = settings or get_settings()
    name = name or settings.mlflow.registered_model
    client = get_client(settings)
    ensure_registered_model(client, name)
    client.set_registered_model_tag(name, key, str(value))


def get_canary_weight(settings: Settings | None = None, name: str | None = None) -> int:
    """The challenger's traffic share in percent (0 when unset)."""
    raw = model_tags(settings, name).get(WEIGHT_TAG, "0")
    try:
        return max(0, min(100, int(raw)))
    except ValueError:
        logger.warning("ignoring malformed canary weight tag %r", raw)
        return 0


def set_canary_weight(
    weight: int, settings: Settings | None = None, name: str | None = None
) -> None:
    from driftloop.errors import InvalidInputError

    if not 0 <= int(weight) <= 100:
        raise InvalidInputError(f"canary weight must be an integer 0..100, got {weight}")
    set_model_tag(WEIGHT_TAG, str(int(weight)), settings, name)


@dataclass(frozen=True)
class RegistrySnapshot:
    """What serving needs of the registry, read in one call: alias targets, weight, mode."""

    name: str
    champion: str | None
    challenger: str | None
    weight: int
    mode: str | None
    tags: dict[str, str] = field(default_factory=dict)


def _weight(raw: str | None) -> int:
    try:
        return max(0, min(100, int(raw or "0")))
    except ValueError:
        logger.warning("ignoring malformed canary weight tag %r", raw)
        return 0


def registry_snapshot(
    settings: Settings | None = None, name: str | None = None
) -> RegistrySnapshot:
    """Champion and challenger versions, canary weight and mode of the registered model (one
    registry call after the health ping); an absent model reads as empty."""
    from mlflow.exceptions import MlflowException

    settings = settings or get_settings()
    name = name or settings.mlflow.registered_model
    try:
        rm = get_client(settings).get_registered_model(name)
    except MlflowException as exc:
        if _is_not_found(exc):
            return RegistrySnapshot(name, None, None, 0, None)
        raise
    aliases = {k: str(v) for k, v in dict(rm.aliases or {}).items()}
    tags = dict(rm.tags or {})
    return RegistrySnapshot(
        name=name,
        champion=aliases.get(CHAMPION),
        challenger=aliases.get(CHALLENGER),
        weight=_weight(tags.get(WEIGHT_TAG)),
        mode=tags.get(MODE_TAG) or None,
        tags=tags,
    )


def set_canary_mode(mode: str, settings: Settings | None = None, name: str | None = None) -> None:
    """Registry override of settings.serving.mode: ``canary`` or ``shadow`` (``""`` clears it)."""
    from driftloop.errors import InvalidInputError

    if mode not in ("canary", "shadow", ""):
        raise InvalidInputError(f"canary mode must be canary or shadow, got {mode!r}")
    if mode:
        set_model_tag(MODE_TAG, mode, settings, name)
    else:
        delete_model_tag(MODE_TAG, settings, name)


def delete_model_tag(key: str, settings: Settings | None = None, name: str | None = None) -> None:
    from mlflow.exceptions import MlflowException

    settings = settings or get_settings()
    name = name or settings.mlflow.registered_model
    try:
        get_client(settings).delete_registered_model_tag(name, key)
    except MlflowException as exc:
        if not _is_not_found(exc):
            raise


def register_logged_model(
    model_uri: str,
    run_id: str | None,
    tags: dict[str, str],
    settings: Settings | None = None,
    name: str | None = None,
) -> VersionInfo:
    """Register an MLflow 3 logged model (``models:/m-...`` from ``log_model``) as a new version.

    MLflow 3 only accepts such a source together with its ``model_id``; this passes it. On any
    failure no half version stays behind.
    """
    from mlflow.store.artifact.utils.models import _parse_model_id_if_present

    settings = settings or get_settings()
    name = name or settings.mlflow.registered_model
    client = get_client(settings)
    ensure_registered_model(client, name)
    model_id = _parse_model_id_if_present(model_uri)
    mv = client.create_model_version(
        name, source=model_uri, run_id=run_id, tags=tags, model_id=model_id
    )
    if str(mv.status) != "READY":
        delete_version(mv.version, settings, name)
        raise ServiceUnavailableError(f"model version {mv.version} ended {mv.status}: removed")
    logger.info("registered %s version %s", name, mv.version)
    return _info(mv)


def run_exists(run_id: str, settings: Settings | None = None) -> bool:
    """Whether the tracking server knows run ``run_id`` (not deleted)."""
    from mlflow.exceptions import MlflowException

    try:
        run = get_client(settings or get_settings()).get_run(run_id)
    except MlflowException as exc:
        if _is_not_found(exc) or getattr(exc, "error_code", "") == "INVALID_PARAMETER_VALUE":
            return False
        raise
    return run.info.lifecycle_stage != "deleted"


def get_run_data(
    run_id: str, settings: Settings | None = None
) -> tuple[dict[str, str], dict[str, str], dict[str, float]]:
    """(params, tags, latest metrics) of run ``run_id``; NotFoundError when it does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        run = get_client(settings or get_settings()).get_run(run_id)
    except MlflowException as exc:
        if _is_not_found(exc) or getattr(exc, "error_code", "") == "INVALID_PARAMETER_VALUE":
            raise NotFoundError(f"MLflow run {run_id} does not exist") from None
        raise
    return dict(run.data.params), dict(run.data.tags), dict(run.data.metrics)
