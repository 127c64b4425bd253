"""Feast configuration built from :class:`~driftloop.settings.Settings` (no feature_store.yaml).

Everything Feast writes lives in the state folder (``settings.state / "features"``): the offline
source parquet files, the registry and the SQLite online store, so a test with a temporary
``state_dir`` is isolated. The definitions come from ``settings.features.repo_path``; their
``FileSource`` paths are relative and resolve against the state folder.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from driftloop.errors import NotFoundError
from driftloop.settings import Settings, get_settings, project_root

if TYPE_CHECKING:
    from feast import FeatureStore
    from feast.repo_config import RepoConfig

#: Folder (inside the state folder) of the feature store's data.
FEATURES_DIR = "features"


def features_dir(settings: Settings) -> Path:
    """The feature store's data folder in the state folder."""
    return settings.state / FEATURES_DIR


def repo_path(settings: Settings) -> Path:
    """The feature repo with the definitions (relative paths: cwd first, then project root)."""
    path = settings.features.repo_path.expanduser()
    if not path.is_absolute() and not path.exists():
        path = project_root() / path
    if not path.is_dir():
        raise NotFoundError(f"feature repo {settings.features.repo_path} not found")
    return path.resolve()


def _sqlite_online(settings: Settings) -> dict[str, Any]:
    return {"type": "sqlite", "path": str(features_dir(settings) / "online_store.db")}


def _redis_online(settings: Settings) -> dict[str, Any]:
    return {"type": "redis", "connection_string": settings.features.redis_connection}


#: Online store backends by the config string ``settings.features.online_store``.
ONLINE_STORES: dict[str, Callable[[Settings], dict[str, Any]]] = {
    "sqlite": _sqlite_online,
    "redis": _redis_online,
}


def repo_config_dict(settings: Settings) -> dict[str, Any]:
    """The feature_store.yaml equivalent, as a dict (paths from settings)."""
    root = features_dir(settings)
    return {
        "project": settings.features.project,
        "provider": "local",
        "registry": {
            "registry_type": "file",
            "path": str(root / "registry.db"),
            "cache_ttl_seconds": 0,
        },
        "online_store": ONLINE_STORES[settings.features.online_store](settings),
        "offline_store": {"type": "duckdb"},
        "entity_key_serialization_version": 3,
        "auth": {"type": "no_auth"},
        "repo_path": root,
    }


def repo_config(settings: Settings | None = None) -> RepoConfig:
    """The Feast :class:`RepoConfig` for ``settings`` (imports feast)."""
    from feast.repo_config import RepoConfig

    settings = settings or get_settings()
    features_dir(settings).mkdir(parents=True, exist_ok=True)
    return RepoConfig(**repo_config_dict(settings))


def feature_store(settings: Settings | None = None) -> FeatureStore:
    """A Feast :class:`FeatureStore` over the state folder of ``settings`` (imports feast)."""
    from feast import FeatureStore

    settings = settings or get_settings()
    config = repo_config(settings)
    return FeatureStore(repo_path=str(features_dir(settings)), config=config)


def require_store(settings: Settings) -> None:
    """NotFoundError when the state holds no feature registry yet."""
    registry = features_dir(settings) / "registry.db"
    if not registry.exists():
        raise NotFoundError(
            f"no feature store in {features_dir(settings)}: run `driftloop features materialize`"
        )


@contextmanager
def quiet_offline_store() -> Iterator[None]:
    """Silence the DeprecationWarning that ibis (inside Feast's DuckDB offline store) raises on
    every query about its own use of a DuckDB API: nothing a driftloop user can act on, and it
    buried the output of ``driftloop demo``. Libraries imported later put their own filters in
    front of a process-wide one, so the filter is scoped to the calls."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r"fetch_arrow_table\(\) is deprecated", category=DeprecationWarning
        )
        yield
