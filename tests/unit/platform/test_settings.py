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


def test_production_refuses_auth_off_and_weak_tokens() -> None:
    with pytest.raises(ValueError, match=r"auth\.enabled=false is refused in production"):
        Settings(environment="production", serving={"auth": {"enabled": False}})
    for weak in ("short-token", "a" * 40, "abababababababababababab"):
        with pytest.raises(ValueError, match="too weak for production"):
            Settings(environment="production", serving={"auth": {"predict_tokens": [weak]}})
    strong = "k3J9x-Vq7_Tn2Lw8RzPa4Yb6Hd1"
    digest = "sha256:" + "ab" * 32  # a digest cannot be checked: taken as given
    ok = Settings(
        environment="production",
        serving={"auth": {"admin_tokens": [strong], "predict_tokens": [digest]}},
    )
    assert ok.auth_enabled
    # development keeps short tokens convenient
    assert Settings(serving={"auth": {"predict_tokens": ["dev"]}}).serving.auth.predict_tokens


@pytest.mark.parametrize(
    ("host", "auth", "refused"),
    [
        ("127.0.0.1", False, False),
        ("localhost", False, False),
        ("::1", False, False),
        ("0.0.0.0", False, True),
        ("10.1.2.3", False, True),
        ("0.0.0.0", True, False),
    ],
)
def test_serving_refuses_a_non_loopback_address_with_auth_off(
    host: str, auth: bool, refused: bool
) -> None:
    s = Settings(serving={"host": host, "auth": {"enabled": auth}})
    error = s.exposure_error()
    assert (error is not None) == refused
    if refused:
        assert f"refusing to serve on {host} with auth off" in str(error)
