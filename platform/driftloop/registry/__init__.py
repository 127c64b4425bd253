"""Model registry (MLflow, aliases only): versions, aliases, canary weight, promotion audit."""

from driftloop.registry.client import (
    CHALLENGER,
    CHAMPION,
    VersionInfo,
    delete_alias,
    get_alias,
    get_canary_weight,
    get_client,
    get_version,
    list_versions,
    ping,
    register_version,
    set_alias,
    set_canary_weight,
    set_version_tags,
)

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "VersionInfo",
    "delete_alias",
    "get_alias",
    "get_canary_weight",
    "get_client",
    "get_version",
    "list_versions",
    "ping",
    "register_version",
    "set_alias",
    "set_canary_weight",
    "set_version_tags",
]
