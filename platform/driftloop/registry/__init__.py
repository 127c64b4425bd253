"""Model registry (MLflow, aliases only): versions, aliases, canary weight, promotion audit.

Reads are in :mod:`driftloop.registry.client`; every alias, weight, mode or rollout change goes
through :mod:`driftloop.registry.promotion`, which audits it."""

from driftloop.registry.client import (
    CHALLENGER,
    CHAMPION,
    RegistrySnapshot,
    VersionInfo,
    get_alias,
    get_client,
    get_version,
    ping,
    register_version,
    registry_snapshot,
    set_version_tags,
)

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "RegistrySnapshot",
    "VersionInfo",
    "get_alias",
    "get_client",
    "get_version",
    "ping",
    "register_version",
    "registry_snapshot",
    "set_version_tags",
]
