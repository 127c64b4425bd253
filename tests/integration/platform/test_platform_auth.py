"""The embedded platform's registry and orchestrator are authenticated: a real MLflow server
with basic auth (users provisioned from the passwords generated into the state folder) and a
real Prefect server with its API auth string, each on a free port, stopped at the end."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil  # type: ignore[import-untyped]
import pytest

from driftloop.embedded.services import (
    free_port,
    mlflow_service,
    prefect_service,
    start_service,
    status_of,
    stop_service,
)
from driftloop.errors import ServiceUnavailableError
from driftloop.registry.access import GRANTS, Credentials, provision, provision_embedded
from driftloop.settings import (
    MlflowSettings,
    PrefectSettings,
    Settings,
    embedded_mlflow_credentials,
    prefect_auth_string,
    secrets_dir,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DRIFTLOOP = str(Path(sys.executable).with_name("driftloop"))
MODEL = "flight-delay"


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """The embedded MLflow server with basic auth, its users provisioned (as `driftloop up`)."""
    state = tmp_path_factory.mktemp("auth-platform")
    settings = Settings(state_dir=state, mlflow=MlflowSettings(port=free_port()))
    service = mlflow_service(settings)
    start_service(service, settings)
    try:
        provision_embedded(settings)
        yield settings
    finally:
        stop_service(service, settings)


def test_the_mlflow_server_is_one_process_the_web_server_itself(platform: Settings) -> None:
    """`mlflow server` leaves a launcher waiting on its web server (~270 MB); the platform's
    launcher (driftloop.embedded.mlflow_server) execs MLflow's web server in its place."""
    pid = status_of(mlflow_service(platform), platform).pid
    assert pid is not None
    server = psutil.Process(pid)
    command = " ".join(server.cmdline())
    assert "-m uvicorn" in command, command
    assert "mlflow.server.auth:create_app" in command, command
    assert server.children(recursive=True) == []
    # and it is the server: the health check and the auth app answer on its port
    assert httpx.get(f"{platform.mlflow.uri}/health", timeout=10).status_code == 200
    anonymous = httpx.get(f"{platform.mlflow.uri}/api/2.0/mlflow/experiments/search", timeout=10)
    assert anonymous.status_code == 401


def creds(settings: Settings, role: str) -> tuple[str, str]:
    found = embedded_mlflow_credentials(settings, role)
    assert found is not None
    return found


def as_user(
    platform: Settings, role: str | None, monkeypatch: pytest.MonkeyPatch, rollout: bool = False
) -> Settings:
    """Settings of a client of ``platform`` from outside (tracking URI given): MLflow's own
    variables carry the user (``role`` None: no credentials at all); ``rollout`` adds the
    rollout user for the registry writers."""
    if role is not None:
        user, password = creds(platform, role)
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", user)
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)
    auth: dict[str, object] = {}
    if rollout:
        user, password = creds(platform, "rollout")
        auth = {"rollout_username": user, "rollout_password": password}
    return Settings(
        state_dir=platform.state / f"client-{role}",
        mlflow={"tracking_uri": platform.mlflow.uri, "auth": auth},
    )


def alias_url(settings: Settings) -> str:
    return f"{settings.mlflow.uri}/api/2.0/mlflow/registered-models/alias"


def register(platform: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """As flows: a run with a tiny artifact, registered as a new version; returns it."""
    from driftloop.registry.client import get_client, register_version

    settings = as_user(platform, "flows", monkeypatch)
    client = get_client(settings)
    experiment = client.get_experiment_by_name(settings.mlflow.experiment)
    assert experiment is not None
    run = client.create_run(experiment.experiment_id)
    weights = tmp_path / "weights.txt"
    weights.write_text("0.5\n")
    client.log_artifact(run.info.run_id, str(weights), "model")
    client.set_terminated(run.info.run_id)
    source = f"runs:/{run.info.run_id}/model"
    return register_version(source, run.info.run_id, {"by": "flows"}, settings).version


def test_without_credentials_nothing_can_be_read_or_changed(platform: Settings) -> None:
    url = platform.mlflow.uri
    read = httpx.get(f"{url}/api/2.0/mlflow/registered-models/get", params={"name": MODEL})
    assert read.status_code == 401
    runs = httpx.post(f"{url}/api/2.0/mlflow/runs/search", json={"experiment_ids": ["1"]})
    assert runs.status_code == 401
    write = httpx.post(alias_url(platform), json={"name": MODEL, "alias": "x", "version": "1"})
    assert write.status_code == 401
    wrong = httpx.post(
        alias_url(platform),
        json={"name": MODEL, "alias": "x", "version": "1"},
        auth=("flows", "not-the-password"),
    )
    assert wrong.status_code == 401
    assert httpx.get(f"{url}/health").status_code == 200  # probes stay open


def test_flows_registers_and_sets_aliases_and_serving_only_reads(
    platform: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from driftloop.registry import client as registry

    version = register(platform, monkeypatch, tmp_path)
    flows = as_user(platform, "flows", monkeypatch)
    registry._set_alias("champion", version, flows)  # flows moves aliases itself
    assert registry.registry_snapshot(flows).champion == version

    serving = as_user(platform, "serving", monkeypatch)
    snapshot = registry.registry_snapshot(serving)
    assert snapshot.champion == version
    got = registry.download_run_artifact(
        str(registry.get_version(version, serving).run_id),
        "model/weights.txt",
        tmp_path / "dl",
        serving,
    )
    assert got.read_text() == "0.5\n"  # serving downloads what it serves
    # without the rollout user, serving's writers are refused with a reason (503 in the API)
    refused = r"MLflow user 'serving' may not set alias challenger .*: registry writes need"
    with pytest.raises(ServiceUnavailableError, match=refused):
        registry._set_alias("challenger", version, serving)
    with pytest.raises(ServiceUnavailableError, match="may not set tag"):
        registry._set_model_tag(registry.WEIGHT_TAG, "50", serving)
    with pytest.raises(ServiceUnavailableError, match="may not delete alias champion"):
        registry._delete_alias("champion", serving)
    user, password = creds(platform, "serving")
    direct = httpx.post(
        alias_url(platform),
        json={"name": MODEL, "alias": "challenger", "version": version},
        auth=(user, password),
    )
    assert direct.status_code == 403
    assert registry.registry_snapshot(serving).challenger is None  # nothing changed


def test_serving_writes_aliases_only_through_the_rollout_user(
    platform: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Option (a): serving's own user stays read-only; its registry writers (the admin routes'
    promote/rollback/weight) act as the rollout user, which cannot touch training runs."""
    from driftloop.registry import client as registry

    version = register(platform, monkeypatch, tmp_path)
    serving = as_user(platform, "serving", monkeypatch, rollout=True)
    registry._set_alias("challenger", version, serving)
    registry._set_model_tag(registry.WEIGHT_TAG, "25", serving)
    snapshot = registry.registry_snapshot(serving)
    assert (snapshot.challenger, snapshot.weight) == (version, 25)
    registry._delete_alias("challenger", serving)
    registry._delete_model_tag(registry.WEIGHT_TAG, serving)
    snapshot = registry.registry_snapshot(serving)
    assert (snapshot.challenger, snapshot.weight) == (None, 0)

    user, password = creds(platform, "rollout")
    runs = httpx.post(
        f"{platform.mlflow.uri}/api/2.0/mlflow/runs/create",
        json={"experiment_id": "1"},
        auth=(user, password),
    )
    assert runs.status_code == 403  # the rollout user cannot log (or pickle) a model


def test_the_cli_process_is_the_flows_user_without_any_variable(platform: Settings) -> None:
    """`driftloop ...` on the machine of `driftloop up`: the embedded settings find the
    generated flows password in the state folder."""
    from driftloop.registry.client import get_client, registry_snapshot

    assert "MLFLOW_TRACKING_USERNAME" not in os.environ
    registry_snapshot(platform)
    assert os.environ["MLFLOW_TRACKING_USERNAME"] == "flows"
    assert get_client(platform).get_experiment_by_name(platform.mlflow.experiment) is not None


def test_provisioning_twice_changes_nothing_and_the_cli_reports_failures_in_one_line(
    platform: Settings,
) -> None:
    again = provision_embedded(platform)
    assert not again.changed, again.line()

    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DRIFTLOOP_"))}
    env["MLFLOW_TRACKING_URI"] = platform.mlflow.uri
    admin_user, admin_password = creds(platform, "admin")
    env["DRIFTLOOP_AUTH_ADMIN_USERNAME"] = admin_user
    env["DRIFTLOOP_AUTH_ADMIN_PASSWORD"] = admin_password
    for role in GRANTS:
        user, password = creds(platform, role)
        env[f"DRIFTLOOP_AUTH_{role.upper()}_USERNAME"] = user
        env[f"DRIFTLOOP_AUTH_{role.upper()}_PASSWORD"] = password
    ok = subprocess.run(
        [DRIFTLOOP, "auth", "provision"], env=env, capture_output=True, text=True, timeout=120
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == "MLflow users and permissions already in place"

    bad = subprocess.run(
        [DRIFTLOOP, "auth", "provision"],
        env={**env, "DRIFTLOOP_AUTH_ADMIN_PASSWORD": "wrong-password-123"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 1
    assert bad.stderr.strip().splitlines() == [
        f"error: MLflow at {platform.mlflow.uri} refused the admin credentials of 'admin' (is "
        "it running with --app-name basic-auth, and is this its admin password?)"
    ]
    missing = subprocess.run(
        [DRIFTLOOP, "auth", "provision"],
        env={k: v for k, v in env.items() if k != "DRIFTLOOP_AUTH_SERVING_PASSWORD"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert missing.returncode == 1
    assert missing.stderr.strip() == "error: DRIFTLOOP_AUTH_SERVING_PASSWORD is not set"


def test_provisioning_takes_back_extra_rights_and_resets_a_changed_password(
    platform: Settings,
) -> None:
    admin = Credentials(*creds(platform, "admin"))
    user, password = creds(platform, "serving")
    base = platform.mlflow.uri
    auth = admin.auth
    httpx.patch(
        f"{base}/api/2.0/mlflow/users/update-password",
        json={"username": user, "password": "someone-else-chose-this"},
        auth=auth,
    ).raise_for_status()
    grant = {"username": user, "resource_type": "registered_model", "resource_id": MODEL}
    httpx.post(
        f"{base}/api/3.0/mlflow/users/permissions/revoke", json=grant, auth=auth
    ).raise_for_status()
    httpx.post(
        f"{base}/api/3.0/mlflow/users/permissions/grant",
        json={**grant, "permission": "MANAGE"},
        auth=auth,
    ).raise_for_status()
    users = {role: Credentials(*creds(platform, role)) for role in GRANTS}
    fixed = provision(base, admin, users, platform.mlflow.experiment, MODEL)
    assert fixed.updated_passwords == [user]
    assert fixed.granted == [f"{user} READ on registered_model {MODEL}"]
    tag = httpx.post(
        f"{base}/api/2.0/mlflow/registered-models/set-tag",
        json={"name": MODEL, "key": "k", "value": "v"},
        auth=(user, password),
    )
    assert tag.status_code == 403


def test_generated_secrets_are_readable_by_their_owner_only(platform: Settings) -> None:
    folder = secrets_dir(platform)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    files = sorted(p.name for p in folder.iterdir())
    assert "mlflow-admin.password" in files
    for path in folder.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE((platform.state / "mlflow" / "basic_auth.ini").stat().st_mode) == 0o600
    admin_password = creds(platform, "admin")[1]
    assert len(admin_password) >= 32
    assert admin_password not in (platform.state / "mlflow" / "basic_auth.ini").read_text()
    log = (platform.state / "logs" / "mlflow.log").read_text()
    assert admin_password not in log


def test_prefect_api_refuses_calls_without_the_auth_string(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path / "state", prefect=PrefectSettings(port=free_port()))
    service = prefect_service(settings)
    start_service(service, settings)
    try:
        auth = prefect_auth_string(settings)
        assert auth is not None
        user, password = auth.split(":", 1)
        url = settings.prefect.url
        assert httpx.get(f"{url}/health").status_code == 200  # the probe stays open
        assert httpx.post(f"{url}/flows/filter", json={}).status_code == 401
        assert httpx.post(f"{url}/flows/filter", json={}, auth=(user, "wrong")).status_code == 401
        assert httpx.post(f"{url}/flows/filter", json={}, auth=(user, password)).status_code == 200
    finally:
        stop_service(service, settings)
    mode = stat.S_IMODE((secrets_dir(settings) / "prefect-api-auth").stat().st_mode)
    assert mode == 0o600


def test_a_lost_admin_password_is_reported_with_what_to_do(
    platform: Settings, tmp_path: Path
) -> None:
    from driftloop.errors import AuthenticationError

    # another state folder pointing at the same server: its generated admin password differs
    other = Settings(state_dir=tmp_path / "other", mlflow={"port": platform.mlflow.port})
    with pytest.raises(AuthenticationError, match=r"refused the admin password in .*auth\.db"):
        provision_embedded(other)
