"""The MLflow registry adapter: the only place that talks to ``MlflowClient``.

Aliases only, never stages: ``champion`` is what serves, ``challenger`` is the canary, and the
registered-model tag ``driftloop.canary_weight`` holds the challenger's share (integer percent).
Every call fails fast with :class:`ServiceUnavailableError` when MLflow cannot be reached
(MLflow's own client would otherwise retry for minutes).

The alias and registered-model tag writers (``_set_alias``, ``_delete_alias``,
``_set_model_tag``, ``_delete_model_tag``) are private to the registry package: only
:mod:`driftloop.registry.promotion` calls them, and it audits every change. They act as the
``rollout`` MLflow user when one is configured (the embedded platform's, or
``mlflow.auth.rollout_username/password``), through a registry store of their own: MLflow's
client reads one identity from the process environment, and serving's is read-only.

Credentials: :func:`configure_client_env` puts this process's MLflow user (settings, else
``MLFLOW_TRACKING_USERNAME/PASSWORD``, else the embedded platform's generated user) into the
environment, where MLflow's client, artifact downloads and the fluent API read it. MLflow
refusing a registry write surfaces as :class:`ServiceUnavailableError` naming the user and
what would work (serving's admin routes answer 503 with it when serving has no rollout user).

``mlflow`` is imported inside the functions: importing it costs ~3 s, which the CLI, the serving
start-up and test collection should not pay when they never reach the registry.
"""

from __future__ import annotations

import functools
import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import httpx

from driftloop.errors import InvalidInputError, NotFoundError, ServiceUnavailableError
from driftloop.settings import (
    Settings,
    get_settings,
    process_mlflow_credentials,
    rollout_mlflow_credentials,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

logger = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
WEIGHT_TAG = "driftloop.canary_weight"
MODE_TAG = "driftloop.canary_mode"
#: the values of MODE_TAG
MODES = ("canary", "shadow")
#: ``"{ISO start}|{challenger version}"`` of the running rollout
ROLLOUT_TAG = "driftloop.rollout_started"
#: version tag: the decision threshold (``is_late`` when P(late) >= it), cost-optimal on the
#: version's holdout under ``settings.kpi``'s error costs; set at registration
THRESHOLD_TAG = "driftloop.threshold"
#: version tag: the KPIs (JSON of ``settings.kpi``) the training gate decided against
KPI_TAG = "driftloop.kpi"
#: version tag: the champion a version replaced when it became champion (what ``restore`` goes
#: back to); absent on a version that replaced no champion
REPLACED_TAG = "driftloop.replaced_version"
#: the threshold of a version registered without THRESHOLD_TAG (before it existed)
DEFAULT_THRESHOLD = 0.5
#: where a served threshold came from: the version's tag, or the default for older versions
THRESHOLD_FROM_VERSION = "version"
THRESHOLD_DEFAULT = "default"

_T = TypeVar("_T")
_D = TypeVar("_D")


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


@dataclass(frozen=True)
class RegistrySnapshot:
    """What serving needs of the registry, read in one call: alias targets, weight, mode."""

    name: str
    champion: str | None
    challenger: str | None
    weight: int
    #: ``canary`` or ``shadow`` when the registry overrides ``settings.serving.mode``, else None
    mode: str | None
    tags: dict[str, str] = field(default_factory=dict)
    #: ISO start of the rollout of the current challenger (None: no rollout of this challenger)
    rollout_started: str | None = None


# ---- connection -------------------------------------------------------------------------------
def configure_client_env(settings: Settings) -> None:
    # Short, bounded retries: an unreachable registry must surface as an error, not a hang.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault(
        "MLFLOW_HTTP_REQUEST_TIMEOUT", str(int(settings.mlflow.request_timeout_s))
    )
    creds = process_mlflow_credentials(settings)
    if creds is not None:
        os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = creds


@functools.cache
def _health_client() -> httpx.Client:
    """One HTTP client for every ping of this process. ``httpx.get`` builds a client per call,
    and with it a TLS context (~10-20 ms of CPU under the GIL, even for http://): serving pings
    on every registry poll, and each stalled the requests in flight (benchmarks/serving.py's
    p99). A client is safe to share between threads."""
    return httpx.Client()


def ping(settings: Settings | None = None, timeout: float = 3.0) -> None:
    """Raise ServiceUnavailableError unless the tracking server answers /health."""
    settings = settings or get_settings()
    uri = settings.mlflow.uri
    if not uri.startswith("http"):
        return  # a file or database store is always "reachable"
    try:
        response = _health_client().get(f"{uri.rstrip('/')}/health", timeout=timeout)
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


def _model(settings: Settings | None, name: str | None) -> tuple[Settings, str]:
    settings = settings or get_settings()
    return settings, name or settings.mlflow.registered_model


# ---- MLflow's "does not exist", mapped in one place --------------------------------------------
def _is_not_found(exc: Exception) -> bool:
    """MLflow's ways of saying "no such model, version, alias or run" (an unset alias comes back
    as INVALID_PARAMETER_VALUE "... alias champion not found", a malformed run id likewise)."""
    code = getattr(exc, "error_code", "")
    return code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "INVALID_PARAMETER_VALUE") or (
        "not found" in str(exc).lower()
    )


def _fetch(call: Callable[[], _T], missing: str) -> _T:
    """``call()``; MLflow's not-found becomes ``NotFoundError(missing)``, anything else raises."""
    from mlflow.exceptions import MlflowException

    try:
        return call()
    except MlflowException as exc:
        if _is_not_found(exc):
            raise NotFoundError(missing) from None
        raise


def _fetch_or(call: Callable[[], _T], default: _D) -> _T | _D:
    """``call()``, or ``default`` when MLflow says the thing does not exist."""
    try:
        return _fetch(call, "")
    except NotFoundError:
        return default


# ---- versions ---------------------------------------------------------------------------------
def _info(mv: ModelVersion) -> VersionInfo:
    return VersionInfo(
        name=mv.name,
        version=str(mv.version),
        run_id=mv.run_id,
        source=mv.source or "",
        tags=dict(mv.tags or {}),
        aliases=tuple(mv.aliases or ()),
    )


def _ensure_registered_model(client: MlflowClient, name: str) -> None:
    if _fetch_or(lambda: client.get_registered_model(name), None) is None:
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
    """Register ``model_uri`` as a new version (no alias); on any failure no half version stays.

    Plain sources (``runs:/...``, a path) and MLflow 3 logged models (``models:/m-...`` from
    ``log_model``, which MLflow accepts only together with their ``model_id``) alike.
    """
    from mlflow.store.artifact.utils.models import _parse_model_id_if_present

    settings, name = _model(settings, name)
    client = get_client(settings)
    _ensure_registered_model(client, name)
    model_id = _parse_model_id_if_present(model_uri) if model_uri.startswith("models:/m-") else None
    mv = client.create_model_version(
        name, source=model_uri, run_id=run_id, tags=tags, model_id=model_id
    )
    if str(mv.status) != "READY":
        delete_version(mv.version, settings, name)
        raise ServiceUnavailableError(f"model version {mv.version} ended {mv.status}: removed")
    logger.info("registered %s version %s", name, mv.version)
    return _info(mv)


def delete_version(version: str, settings: Settings | None = None, name: str | None = None) -> None:
    settings, name = _model(settings, name)
    try:
        get_client(settings, check=False).delete_model_version(name, str(version))
    except Exception:  # best effort cleanup
        logger.warning("could not delete %s version %s", name, version, exc_info=True)


def get_version(
    version: str, settings: Settings | None = None, name: str | None = None
) -> VersionInfo:
    settings, name = _model(settings, name)
    client = get_client(settings)
    mv = _fetch(
        lambda: client.get_model_version(name, str(version)),
        f"model {name} has no version {version}",
    )
    return _info(mv)


def get_alias(
    alias: str, settings: Settings | None = None, name: str | None = None
) -> VersionInfo | None:
    """The version an alias points at, or None when the alias (or the model) is unset."""
    settings, name = _model(settings, name)
    client = get_client(settings)
    mv = _fetch_or(lambda: client.get_model_version_by_alias(name, alias), None)
    return None if mv is None else _info(mv)


def set_version_tags(
    version: str, tags: dict[str, str], settings: Settings | None = None, name: str | None = None
) -> None:
    settings, name = _model(settings, name)
    client = get_client(settings)
    for key, value in tags.items():
        client.set_model_version_tag(name, str(version), key, str(value))


def decision_threshold(info: VersionInfo) -> tuple[float, str]:
    """``(threshold, source)`` of a version: its THRESHOLD_TAG (source ``version``), else
    DEFAULT_THRESHOLD (source ``default``: registered before thresholds were stored).
    InvalidInputError for a tag that is not a probability: such a version is not served with a
    threshold nobody chose."""
    raw = info.tags.get(THRESHOLD_TAG)
    if raw is None:
        return DEFAULT_THRESHOLD, THRESHOLD_DEFAULT
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    # the cost-optimal cut may lie just above 1 (``1 + 1e-7``: "predict nothing late")
    if not 0.0 <= value <= 1.0 + 1e-6:
        raise InvalidInputError(
            f"model {info.name} version {info.version} has tag {THRESHOLD_TAG}={raw[:40]!r}, "
            "not a probability in [0, 1]: refusing to serve it with a threshold nobody chose"
        )
    return value, THRESHOLD_FROM_VERSION


# ---- the registered model: aliases, weight, mode ----------------------------------------------
def _parse_weight(raw: str | None) -> int:
    """The canary weight tag as read: clamped to 0..100, 0 when unset or malformed."""
    try:
        return max(0, min(100, int(raw or "0")))
    except ValueError:
        logger.warning("ignoring malformed canary weight tag %r", raw)
        return 0


def rollout_tag(started: str, challenger: str) -> str:
    """The value of ROLLOUT_TAG: when the rollout of ``challenger`` started."""
    return f"{started}|{challenger}"


def _parse_rollout(raw: str | None, challenger: str | None) -> str | None:
    started, _, version = (raw or "").partition("|")
    return started if started and challenger is not None and version == challenger else None


def registry_snapshot(
    settings: Settings | None = None, name: str | None = None
) -> RegistrySnapshot:
    """Champion and challenger versions, canary weight and mode of the registered model (one
    registry call after the health ping); an absent model reads as empty."""
    settings, name = _model(settings, name)
    client = get_client(settings)
    rm = _fetch_or(lambda: client.get_registered_model(name), None)
    if rm is None:
        return RegistrySnapshot(name, None, None, 0, None)
    aliases = {k: str(v) for k, v in dict(rm.aliases or {}).items()}
    tags = dict(rm.tags or {})
    return RegistrySnapshot(
        name=name,
        champion=aliases.get(CHAMPION),
        challenger=aliases.get(CHALLENGER),
        weight=_parse_weight(tags.get(WEIGHT_TAG)),
        mode=tags.get(MODE_TAG) if tags.get(MODE_TAG) in MODES else None,
        tags=tags,
        rollout_started=_parse_rollout(tags.get(ROLLOUT_TAG), aliases.get(CHALLENGER)),
    )


def _writer_store(settings: Settings) -> tuple[Any, str]:
    """(model registry store, user name) the registry writers use: a REST store of their own
    as the rollout user when one is configured, else this process's client's store."""
    client = get_client(settings)  # health ping; this process's credentials in the env
    creds = rollout_mlflow_credentials(settings)
    uri = settings.mlflow.uri
    if creds is None or not uri.startswith("http"):
        registry = client._get_registry_client()  # type: ignore[no-untyped-call]  # untyped
        return registry.store, os.environ.get("MLFLOW_TRACKING_USERNAME", "this process's user")
    from mlflow.store.model_registry.rest_store import RestStore
    from mlflow.utils.credentials import get_default_host_creds
    from mlflow.utils.rest_utils import MlflowHostCreds

    username, password = creds

    def host_creds() -> MlflowHostCreds:
        # TLS settings as configured for MLflow; the identity is the rollout user's, only here.
        host: MlflowHostCreds = get_default_host_creds(uri)  # type: ignore[no-untyped-call]
        host.username, host.password, host.token = username, password, None
        return host

    return RestStore(host_creds), username  # type: ignore[no-untyped-call]  # untyped


#: How a process gets the right to move aliases (said whenever MLflow refuses a write).
WRITER_HINT = (
    "registry writes need the rollout user (DRIFTLOOP_MLFLOW__AUTH__ROLLOUT_USERNAME and "
    "_PASSWORD; the embedded platform passes its own) or the driftloop CLI"
)


def _write(settings: Settings, what: str, call: Callable[[Any], _T]) -> _T:
    """``call(store)`` with the writers' store. MLflow refusing the write (401/403) is a
    ServiceUnavailableError (503 where an API relays it: the caller may be entitled, this
    process's MLflow user is not) that says which user and what would work."""
    from mlflow.exceptions import MlflowException

    store, user = _writer_store(settings)
    try:
        return call(store)
    except MlflowException as exc:
        code = getattr(exc, "error_code", "")
        text = str(exc).lower()
        if code == "PERMISSION_DENIED" or "permission denied" in text:
            reason = f"MLflow user {user!r} may not {what}"
        elif code == "UNAUTHENTICATED" or "credentials" in text or "unauthorized" in text:
            reason = f"MLflow refused the credentials of user {user!r} to {what}"
        else:
            raise
        raise ServiceUnavailableError(f"{reason}: {WRITER_HINT}") from None


def _set_alias(alias: str, version: str, settings: Settings, name: str | None = None) -> None:
    """Raw write; only :mod:`driftloop.registry.promotion` calls it (and audits)."""
    settings, name = _model(settings, name)
    _write(
        settings,
        f"set alias {alias} of {name}",
        lambda store: store.set_registered_model_alias(name, alias, str(version)),
    )


def _delete_alias(alias: str, settings: Settings, name: str | None = None) -> None:
    """Raw write (an unset alias is no error); only promotion.py calls it."""
    settings, name = _model(settings, name)
    _write(
        settings,
        f"delete alias {alias} of {name}",
        lambda store: _fetch_or(lambda: store.delete_registered_model_alias(name, alias), None),
    )


def _set_model_tag(key: str, value: str, settings: Settings, name: str | None = None) -> None:
    """Raw write of a registered-model tag (the model is created when absent); only promotion.py
    calls it."""
    from mlflow.entities.model_registry import RegisteredModelTag

    settings, name = _model(settings, name)

    def write(store: Any) -> None:
        if _fetch_or(lambda: store.get_registered_model(name), None) is None:
            store.create_registered_model(
                name,
                description="P(arrival delay > 15 min) for NYC flights; served by driftloop.",
            )
        tag = RegisteredModelTag(key, str(value))  # type: ignore[no-untyped-call]  # untyped
        store.set_registered_model_tag(name, tag)

    _write(settings, f"set tag {key} of {name}", write)


def _set_version_tag(
    version: str, key: str, value: str, settings: Settings, name: str | None = None
) -> None:
    """Raw write of a version's tag with the writers' identity; only promotion.py calls it
    (REPLACED_TAG, as part of an audited champion change)."""
    from mlflow.entities.model_registry import ModelVersionTag

    settings, name = _model(settings, name)
    tag = ModelVersionTag(key, str(value))  # type: ignore[no-untyped-call]  # untyped
    _write(
        settings,
        f"set tag {key} of {name} version {version}",
        lambda store: store.set_model_version_tag(name, str(version), tag),
    )


def _write_version_notes(
    version: str,
    tags: dict[str, str],
    description: str | None,
    settings: Settings,
    name: str | None = None,
) -> None:
    """Raw write of a version's tags, then its description, with the writers' identity (the
    rollout user may edit model versions but not runs); only
    :mod:`driftloop.registry.description` calls it."""
    from mlflow.entities.model_registry import ModelVersionTag

    settings, name = _model(settings, name)

    def write(store: Any) -> None:
        for key, value in tags.items():
            tag = ModelVersionTag(key, str(value))  # type: ignore[no-untyped-call]  # untyped
            store.set_model_version_tag(name, str(version), tag)
        if description is not None:
            store.update_model_version(name, str(version), description)

    _write(settings, f"edit {name} version {version}", write)


def _delete_model_tag(key: str, settings: Settings, name: str | None = None) -> None:
    """Raw write (an unset tag is no error); only promotion.py calls it."""
    settings, name = _model(settings, name)
    _write(
        settings,
        f"delete tag {key} of {name}",
        lambda store: _fetch_or(lambda: store.delete_registered_model_tag(name, key), None),
    )


# ---- runs -------------------------------------------------------------------------------------
def run_exists(run_id: str, settings: Settings | None = None) -> bool:
    """Whether the tracking server knows run ``run_id`` (not deleted)."""
    client = get_client(settings or get_settings())
    run = _fetch_or(lambda: client.get_run(run_id), None)
    return run is not None and run.info.lifecycle_stage != "deleted"


def get_run_data(
    run_id: str, settings: Settings | None = None
) -> tuple[dict[str, str], dict[str, str], dict[str, float]]:
    """(params, tags, latest metrics) of run ``run_id``; NotFoundError when it does not exist."""
    client = get_client(settings or get_settings())
    run = _fetch(lambda: client.get_run(run_id), f"MLflow run {run_id} does not exist")
    return dict(run.data.params), dict(run.data.tags), dict(run.data.metrics)


def download_run_artifact(run_id: str, path: str, dst_dir: Path, settings: Settings) -> Path:
    """Download artifact ``path`` of run ``run_id`` into ``dst_dir``. MLflow down:
    ServiceUnavailableError (pinged first); the run or the artifact missing: NotFoundError."""
    from mlflow.exceptions import MlflowException

    client = get_client(settings)
    try:
        return Path(client.download_artifacts(run_id, path, str(dst_dir)))
    except (MlflowException, OSError) as exc:
        raise NotFoundError(f"run {run_id} has no artifact {path} ({type(exc).__name__})") from None


def log_run_files(run_id: str, files: list[Path], artifact_dir: str, settings: Settings) -> None:
    """Upload ``files`` into ``artifact_dir`` of run ``run_id``."""
    client = get_client(settings)
    for file in files:
        client.log_artifact(run_id, str(file), artifact_dir)


def log_run_metrics(run_id: str, metrics: dict[str, float], step: int, settings: Settings) -> None:
    """Log ``metrics`` on run ``run_id`` at ``step``."""
    client = get_client(settings)
    for key, value in metrics.items():
        client.log_metric(run_id, key, value, step=step)


def set_run_tags(run_id: str, tags: dict[str, str], settings: Settings) -> None:
    """Set ``tags`` on run ``run_id`` (no health ping: called right after a registry write)."""
    client = get_client(settings, check=False)
    for key, value in tags.items():
        client.set_tag(run_id, key, value)
