"""Token auth: hashed tokens, 401 for missing/unknown, 403 for a missing scope; tokens are
secrets that reach a child process only as digests."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from driftloop.errors import AuthenticationError, PermissionDeniedError
from driftloop.settings import Settings
from serving.auth import ADMIN, FEEDBACK, PREDICT, Authenticator
from serving.process import serving_env


def _auth(tmp_path: Path, **auth: Any) -> Authenticator:
    return Authenticator(Settings(state_dir=tmp_path, serving={"auth": auth}))


def test_scopes_and_hashed_tokens(tmp_path: Path) -> None:
    hashed = "sha256:" + hashlib.sha256(b"adm").hexdigest()
    auth = _auth(tmp_path, enabled=True, admin_tokens=[hashed], predict_tokens=["pred"])
    assert auth.require("Bearer pred", PREDICT).startswith("token:")
    assert auth.require("Bearer adm", ADMIN).startswith("token:")
    assert auth.require("bearer adm", PREDICT)  # admin may predict
    with pytest.raises(PermissionDeniedError) as denied:
        auth.require("Bearer pred", ADMIN)
    assert denied.value.status_code == 403
    for header in (None, "", "Bearer", "Basic pred", "Bearer nope"):
        with pytest.raises(AuthenticationError) as err:
            auth.require(header, PREDICT)
        assert err.value.status_code == 401


def test_labels_need_the_feedback_scope_which_predict_tokens_lack(tmp_path: Path) -> None:
    """Labels steer rollbacks, promotions and retrains: a predict token (held by every client
    application) may not post them; a feedback token may, and only that; admin may too."""
    auth = _auth(
        tmp_path,
        enabled=True,
        admin_tokens=["adm"],
        predict_tokens=["pred"],
        feedback_tokens=["lab"],
    )
    with pytest.raises(PermissionDeniedError, match="lacks the feedback scope") as denied:
        auth.require("Bearer pred", FEEDBACK)
    assert denied.value.status_code == 403
    labeler = auth.require("Bearer lab", FEEDBACK)
    assert labeler == "token:" + hashlib.sha256(b"lab").hexdigest()[:8]
    assert auth.require("Bearer adm", FEEDBACK).startswith("token:")
    for scope in (PREDICT, ADMIN):
        with pytest.raises(PermissionDeniedError, match=f"lacks the {scope} scope"):
            auth.require("Bearer lab", scope)
    with pytest.raises(AuthenticationError):
        auth.require("Bearer guess", FEEDBACK)
    assert _auth(tmp_path).require(None, FEEDBACK) == "anonymous"  # auth off: as before


def test_auth_is_off_in_development_by_default_and_on_in_production(tmp_path: Path) -> None:
    assert _auth(tmp_path).require(None, ADMIN) == "anonymous"
    prod = Authenticator(
        Settings(state_dir=tmp_path, environment="production", serving={"auth": {}})
    )
    with pytest.raises(AuthenticationError):
        prod.require(None, PREDICT)


def test_tokens_are_secrets_masked_in_repr_and_dumps(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path, serving={"auth": {"admin_tokens": ["adm-secret"]}})
    token = settings.serving.auth.admin_tokens[0]
    assert isinstance(token, SecretStr)
    assert "adm-secret" not in repr(settings)
    assert "adm-secret" not in settings.model_dump_json()
    assert token == "adm-secret"  # compared by digest
    assert token != "other"


def test_child_environment_carries_token_digests_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DRIFTLOOP_SERVING__AUTH__PREDICT_TOKENS", '["pred-secret"]')
    settings = Settings(
        state_dir=tmp_path,
        serving={"auth": {"enabled": True, "admin_tokens": ["adm-secret"]}},
    )
    env = serving_env(settings)
    assert not [k for k, v in env.items() if "adm-secret" in v or "pred-secret" in v]
    for key in ("DRIFTLOOP_SERVING__AUTH__ADMIN_TOKENS", "DRIFTLOOP_SERVING__AUTH__PREDICT_TOKENS"):
        assert all(t.startswith("sha256:") for t in json.loads(env[key]))
    for key, value in env.items():  # the child reads its settings from this environment
        monkeypatch.setenv(key, value)
    child = Authenticator(Settings())
    assert child.require("Bearer adm-secret", ADMIN).startswith("token:")
    assert child.require("Bearer pred-secret", PREDICT).startswith("token:")
    with pytest.raises(AuthenticationError):
        child.require(
            "Bearer " + json.loads(env["DRIFTLOOP_SERVING__AUTH__ADMIN_TOKENS"])[0], ADMIN
        )


def test_the_server_refuses_to_start_open_on_a_public_address(tmp_path: Path) -> None:
    """Auth off is for 127.0.0.1: bound elsewhere the app is not built, and ``python -m
    serving`` says why in one line and exits 1 (it would let anyone move models)."""
    import subprocess
    import sys

    from driftloop.errors import ConfigurationError
    from serving.app import create_app

    open_settings = Settings(state_dir=tmp_path, serving={"host": "0.0.0.0"})
    with pytest.raises(ConfigurationError, match=r"refusing to serve on 0\.0\.0\.0 with auth off"):
        create_app(open_settings)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DRIFTLOOP_", "PREFECT_"))}
    env.update(DRIFTLOOP_STATE_DIR=str(tmp_path), DRIFTLOOP_SERVING__HOST="0.0.0.0")
    out = subprocess.run(
        [sys.executable, "-m", "serving"], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 1
    assert out.stderr.strip().splitlines()[-1].startswith("error: refusing to serve on 0.0.0.0")
