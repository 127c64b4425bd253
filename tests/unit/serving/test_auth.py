"""Token auth: hashed tokens, 401 for missing/unknown, 403 for a missing scope."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from driftloop.errors import AuthenticationError, PermissionDeniedError
from driftloop.settings import Settings
from serving.auth import ADMIN, PREDICT, Authenticator


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


def test_auth_is_off_in_development_by_default_and_on_in_production(tmp_path: Path) -> None:
    assert _auth(tmp_path).require(None, ADMIN) == "anonymous"
    prod = Authenticator(
        Settings(state_dir=tmp_path, environment="production", serving={"auth": {}})
    )
    with pytest.raises(AuthenticationError):
        prod.require(None, PREDICT)
