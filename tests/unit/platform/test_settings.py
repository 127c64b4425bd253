from __future__ import annotations

from pathlib import Path

import pytest

from driftloop.settings import Settings


def test_defaults_work_on_one_machine() -> None:
    s = Settings()
    assert s.state_dir == Path(".driftloop")
    assert s.mlflow.uri == "http://127.0.0.1:5000"
    assert s.prefect.url == "http://127.0.0.1:4200/api"
    assert s.dvc_remote_url.endswith("dvc-remote")
    assert s.features.online_store == "sqlite"
    assert s.auth_enabled is False  # development


def test_nested_environment_variables_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIFTLOOP_MLFLOW__PORT", "5123")
    monkeypatch.setenv("DRIFTLOOP_STATE_DIR", "/tmp/x-state")
    monkeypatch.setenv("DRIFTLOOP_DATA__MAX_INVALID_SHARE", "0.2")
    monkeypatch.setenv("DRIFTLOOP_SERVING__AUTH__PREDICT_TOKENS", '["abc"]')
    s = Settings()
    assert s.mlflow.uri == "http://127.0.0.1:5123"
    assert s.state == Path("/tmp/x-state")
    assert s.data.max_invalid_share == 0.2
    assert s.serving.auth.predict_tokens == ["abc"]


def test_production_enables_auth_and_refuses_placeholder_tokens(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DRIFTLOOP_ENVIRONMENT", "production")
    assert Settings().auth_enabled is True
    monkeypatch.setenv("DRIFTLOOP_SERVING__AUTH__ADMIN_TOKENS", '["change-me"]')
    with pytest.raises(ValueError, match="placeholder"):
        Settings()


def test_tokens_are_kept_hashed() -> None:
    s = Settings(serving={"auth": {"admin_tokens": ["secret", "sha256:" + "ab" * 32]}})
    hashed = s.serving.auth.hashed(s.serving.auth.admin_tokens)
    assert "secret" not in hashed
    assert "ab" * 32 in hashed
    assert len(hashed) == 2


def test_invalid_values_are_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIFTLOOP_DATA__MAX_INVALID_SHARE", "1.5")
    with pytest.raises(ValueError, match="max_invalid_share"):
        Settings()
