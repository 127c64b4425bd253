"""Serving tokens never reach a child process in plain text: the MLflow server, the Prefect
server, the worker (and so every flow run) and serving get them only as ``sha256:`` digests."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable

import pytest

from driftloop.embedded.services import mlflow_service, prefect_server_env, service_env
from driftloop.settings import Settings, child_environ
from serving.process import serving_env

ADMIN, PREDICT = "plain-admin-token", "plain-predict-token"


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch, make_settings: Callable[..., Settings]) -> Settings:
    # as a user would give them: plain tokens in this process's environment
    monkeypatch.setenv("DRIFTLOOP_SERVING__AUTH__ADMIN_TOKENS", json.dumps([ADMIN]))
    monkeypatch.setenv("DRIFTLOOP_SERVING__AUTH__PREDICT_TOKENS", json.dumps([PREDICT]))
    return make_settings(serving={"auth": {"admin_tokens": [ADMIN], "predict_tokens": [PREDICT]}})


@pytest.mark.parametrize(
    "environ",
    [
        child_environ,
        service_env,
        prefect_server_env,
        lambda s: mlflow_service(s).env,
        serving_env,
    ],
    ids=["child_environ", "worker+flows", "prefect-server", "mlflow-server", "serving"],
)
def test_children_get_token_digests_never_the_tokens(
    settings: Settings, environ: Callable[[Settings], dict[str, str]]
) -> None:
    env = environ(settings)
    assert not [k for k, v in env.items() if ADMIN in v or PREDICT in v]
    digest = hashlib.sha256(PREDICT.encode()).hexdigest()
    assert json.loads(env["DRIFTLOOP_SERVING__AUTH__PREDICT_TOKENS"]) == [f"sha256:{digest}"]
    # a child reading its settings from that environment accepts the plain token
    child = Settings.model_validate({"serving": {"auth": {"predict_tokens": [f"sha256:{digest}"]}}})
    assert child.serving.auth.hashed(child.serving.auth.predict_tokens) == {digest}
