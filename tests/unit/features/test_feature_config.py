"""Feast configuration from settings: everything in the state folder, backend by config string."""

from __future__ import annotations

from pathlib import Path

import pytest

from driftloop.features.config import repo_config_dict, repo_path
from driftloop.settings import FeatureSettings, Settings


def test_registry_online_store_and_sources_live_in_the_state_folder(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path)
    cfg = repo_config_dict(settings)
    assert cfg["registry"]["path"] == str(tmp_path / "features" / "registry.db")
    assert cfg["online_store"] == {
        "type": "sqlite",
        "path": str(tmp_path / "features" / "online_store.db"),
    }
    assert cfg["repo_path"] == tmp_path / "features"
    assert cfg["offline_store"] == {"type": "duckdb"}
    assert cfg["project"] == "driftloop"


def test_redis_online_store_by_config_string(tmp_path: Path) -> None:
    settings = Settings(
        state_dir=tmp_path,
        features=FeatureSettings(online_store="redis", redis_connection="redis:6380"),
    )
    assert repo_config_dict(settings)["online_store"] == {
        "type": "redis",
        "connection_string": "redis:6380",
    }


def test_feature_repo_is_found_from_any_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    path = repo_path(Settings(state_dir=tmp_path))
    assert (path / "definitions.py").is_file()
