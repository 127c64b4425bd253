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


# ---- credentials of MLflow and Prefect ---------------------------------------------------------
def _credentials_settings(tmp_path: Path, **mlflow: object) -> Settings:
    return Settings(state_dir=tmp_path / "state", mlflow=mlflow)


def test_embedded_secrets_are_generated_once_owner_only_and_never_for_external_servers(
    tmp_path: Path,
) -> None:
    import stat

    from driftloop.settings import embedded_mlflow_credentials, prefect_auth_string, secrets_dir

    s = _credentials_settings(tmp_path)
    admin = embedded_mlflow_credentials(s, "admin")
    assert admin is not None
    assert admin[0] == "admin"
    assert len(admin[1]) >= 32
    assert embedded_mlflow_credentials(s, "admin") == admin  # stable across calls
    assert embedded_mlflow_credentials(s, "flows") != admin
    auth = prefect_auth_string(s)
    assert auth is not None
    assert auth.startswith("driftloop:")
    folder = secrets_dir(s)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert {stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()} == {0o600}
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]  # no temp files left

    external = _credentials_settings(tmp_path / "x", tracking_uri="http://mlflow:5000")
    assert embedded_mlflow_credentials(external, "flows") is None
    off = _credentials_settings(tmp_path / "y", auth={"enabled": False})
    assert embedded_mlflow_credentials(off, "flows") is None
    assert not secrets_dir(external).exists()
    assert not secrets_dir(off).exists()


def test_credentials_come_from_settings_then_mlflow_variables_then_the_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from driftloop.settings import embedded_mlflow_credentials, process_mlflow_credentials

    s = _credentials_settings(tmp_path)
    assert process_mlflow_credentials(s) == embedded_mlflow_credentials(s, "flows")
    assert process_mlflow_credentials(s.with_mlflow_role("serving")) == (
        embedded_mlflow_credentials(s, "serving")
    )
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "someone")
    assert process_mlflow_credentials(s) is None  # MLflow reads its own variables
    monkeypatch.setenv("DRIFTLOOP_MLFLOW__AUTH__USERNAME", "ci")
    monkeypatch.setenv("DRIFTLOOP_MLFLOW__AUTH__PASSWORD", "ci-password-long")
    explicit = Settings(state_dir=tmp_path / "state")
    assert process_mlflow_credentials(explicit) == ("ci", "ci-password-long")
    assert "ci-password-long" not in repr(explicit)


def test_children_get_the_least_identity_they_need(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from driftloop.embedded.services import mlflow_service, prefect_server_env, service_env
    from driftloop.settings import child_environ, embedded_mlflow_credentials, prefect_auth_string

    s = _credentials_settings(tmp_path)
    serving = child_environ(s)  # serving and any other child: read-only, no Prefect access
    assert serving["MLFLOW_TRACKING_USERNAME"] == "serving"
    assert "PREFECT_API_AUTH_STRING" not in serving
    rollout = embedded_mlflow_credentials(s, "rollout")
    assert rollout is not None
    assert serving["DRIFTLOOP_MLFLOW__AUTH__ROLLOUT_USERNAME"] == rollout[0]
    for key in (
        "DRIFTLOOP_MLFLOW__AUTH__ROLLOUT_USERNAME",
        "DRIFTLOOP_MLFLOW__AUTH__ROLLOUT_PASSWORD",
    ):
        monkeypatch.setenv(key, serving[key])
    child = Settings()  # the child reads the rollout user from its environment
    assert child.mlflow.auth.rollout_username == rollout[0]
    assert child.mlflow.auth.rollout_password is not None
    assert child.mlflow.auth.rollout_password.get_secret_value() == rollout[1]

    flows = service_env(s)  # the worker and every flow run
    assert flows["MLFLOW_TRACKING_USERNAME"] == "flows"
    assert flows["PREFECT_API_AUTH_STRING"] == prefect_auth_string(s)

    server = mlflow_service(s)
    assert server.command[3:5] == ["--app-name", "basic-auth"]
    assert "MLFLOW_TRACKING_USERNAME" not in server.env
    admin = embedded_mlflow_credentials(s, "admin")
    assert admin is not None
    assert server.env["MLFLOW_AUTH_ADMIN_PASSWORD"] == admin[1]
    assert admin[1] not in " ".join(server.command)  # not visible in the process list
    assert prefect_server_env(s)["PREFECT_SERVER_API_AUTH_STRING"] == prefect_auth_string(s)


def test_auth_can_be_switched_off_for_throwaway_servers_only_by_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from driftloop.embedded.services import mlflow_service, prefect_server_env

    monkeypatch.setenv("DRIFTLOOP_MLFLOW__AUTH__ENABLED", "false")
    monkeypatch.setenv("DRIFTLOOP_PREFECT__AUTH__ENABLED", "false")
    s = Settings(state_dir=tmp_path / "state")
    assert "--app-name" not in mlflow_service(s).command
    assert "PREFECT_SERVER_API_AUTH_STRING" not in prefect_server_env(s)
    monkeypatch.delenv("DRIFTLOOP_MLFLOW__AUTH__ENABLED")
    monkeypatch.delenv("DRIFTLOOP_PREFECT__AUTH__ENABLED")
    assert Settings().mlflow.auth.enabled is True  # the default is on
    assert Settings().prefect.auth.enabled is True


def test_ui_logins_name_the_secret_files_never_the_secrets(tmp_path: Path) -> None:
    from driftloop.settings import embedded_secret, mlflow_secret_name, ui_logins

    settings = Settings(state_dir=tmp_path)
    lines = ui_logins(settings)
    assert len(lines) == 2
    password = embedded_secret(settings, mlflow_secret_name("flows"))
    assert "user flows" in lines[0]
    assert "mlflow-flows.password" in lines[0]
    assert password not in " ".join(lines)
    off = Settings(
        state_dir=tmp_path,
        mlflow={"auth": {"enabled": False}},
        prefect={"auth": {"enabled": False}},
    )
    assert ui_logins(off) == []
