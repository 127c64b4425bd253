"""A real ``python -m serving`` against the real MLflow server: the champion never disappears by
accident and a tampered artifact never runs. A challenger whose artifact was overwritten after
registration is refused (readiness lists why, the audit log has an ``artifact_refused`` record);
a champion alias pointed at a tampered or unloadable version, or deleted outright, leaves the last
good champion answering, with readiness ``degraded`` and the reason; promoting a challenger that
did not go through a canary is 409."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from polling import wait_for

from driftloop.registry.client import CHAMPION, get_client
from driftloop.registry.integrity import register_verified_version
from driftloop.registry.promotion import assign_alias_after_gate, read_audit, reset_champion
from driftloop.settings import Settings
from serving.examples import features_request

pytestmark = pytest.mark.integration

MODEL_CODE = Path(__file__).with_name("fake_model.py")
ADMIN = {"Authorization": "Bearer admin-integrity-secret"}
PREDICT = {"Authorization": "Bearer predict-integrity-secret"}


def _log(settings: Settings, bias: float) -> tuple[str, str]:
    """Log the fake model in its own run; ``(models:/m-... uri, run id)``."""
    import mlflow

    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(settings.mlflow.uri)
    mlflow.set_experiment(settings.mlflow.experiment)
    try:
        with mlflow.start_run() as run:
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=str(MODEL_CODE),
                model_config={"bias": bias},
                pip_requirements=["mlflow"],
            )
    finally:
        mlflow.set_tracking_uri(previous)
    return str(info.model_uri), run.info.run_id


def _register(settings: Settings, source: tuple[str, str]) -> str:
    return register_verified_version(source[0], source[1], {}, settings).version


def test_tampered_missing_or_unloadable_champion_never_takes_serving_down(
    serving_settings: Callable[..., Settings],
    server: Callable[[Settings], Any],
    tmp_path: Path,
) -> None:
    settings = serving_settings(
        serving={
            "auth": {
                "enabled": True,
                "admin_tokens": [ADMIN["Authorization"].split()[1]],
                "predict_tokens": [PREDICT["Authorization"].split()[1]],
            }
        }
    )
    name = settings.mlflow.registered_model
    client = get_client(settings)
    v1 = _register(settings, _log(settings, -1.0))
    reset_champion(v1, settings=settings)
    tampered_source = _log(settings, -0.5)
    v2 = _register(settings, tampered_source)
    # v3: its hash is right, but it is no model at all (loading it fails)
    experiment = client.get_experiment_by_name(settings.mlflow.experiment)
    assert experiment is not None
    run = client.create_run(experiment.experiment_id)
    client.log_text(run.info.run_id, "not a model", f"plain-{uuid.uuid4().hex[:6]}/README.txt")
    plain = next(a.path for a in client.list_artifacts(run.info.run_id))
    v3 = _register(settings, (f"runs:/{run.info.run_id}/{plain}", run.info.run_id))

    # Overwrite v2's code in the artifact store after registration.
    marker = tmp_path / "tampered-code-ran"
    evil = tmp_path / "upload" / "fake_model.py"
    evil.parent.mkdir()
    evil.write_text(f"open({str(marker)!r}, 'w').write('ran')\n" + MODEL_CODE.read_text())
    client.log_model_artifact(tampered_source[0].removeprefix("models:/"), str(evil))

    proc = server(settings)
    with httpx.Client(base_url=proc.url, timeout=30) as http:

        def ready() -> dict[str, Any]:
            out: dict[str, Any] = http.get("/v2/health/ready").json()
            return out

        def served_by() -> str:
            r = http.post(f"/v2/models/{name}/infer", json=features_request(1), headers=PREDICT)
            assert r.status_code == 200, r.text
            return str(r.json()["model_version"])

        assert ready()["champion"] == v1
        assert ready()["status"] == "ready"

        # A tampered challenger: refused, listed, audited; the champion serves everybody.
        assign_alias_after_gate(v2, "challenger", "test", settings=settings)
        wait_for(lambda: v2 in ready()["refused"], timeout=60)
        health = ready()
        assert health["status"] == "ready"
        assert health["challenger"] is None
        assert "changed after registration" in health["refused"][v2]
        refusals = [r for r in read_audit(settings) if r["action"] == "artifact_refused"]
        assert [(r["to_version"], r["actor"]) for r in refusals] == [(v2, "serving")]

        # It never went through a canary: promoting it is 409, with the reason.
        r = http.post("/admin/promote", json={"reason": "skip the canary"}, headers=ADMIN)
        assert r.status_code == 409, r.text
        assert "did not go through a canary" in r.json()["error"]
        r = http.post("/admin/promote", json={"version": v1}, headers=ADMIN)
        assert r.status_code == 409, r.text
        assert http.post("/admin/rollback", json={}, headers=ADMIN).status_code == 200

        # The champion alias pointed at the tampered version: the last good champion answers.
        reset_champion(v2, settings=settings)
        wait_for(lambda: ready()["status"] == "degraded", timeout=60)
        health = ready()
        assert health["champion"] == v1
        assert f"champion version {v2} cannot be served" in health["last_error"]
        assert "changed after registration" in health["last_error"]
        assert served_by() == v1

        # ... at a version that cannot be loaded.
        reset_champion(v3, settings=settings)
        wait_for(lambda: f"version {v3}" in (ready()["last_error"] or ""), timeout=60)
        assert ready()["status"] == "degraded"
        assert served_by() == v1

        # ... deleted outright (directly in MLflow).
        client.delete_registered_model_alias(name, CHAMPION)
        wait_for(lambda: "alias" in (ready()["last_error"] or ""), timeout=60)
        health = ready()
        assert (health["status"], health["champion"]) == ("degraded", v1)
        assert http.get("/v2/health/ready").status_code == 200  # still takes traffic
        assert served_by() == v1

        # Put right: ready again, with the same champion.
        reset_champion(v1, settings=settings)
        wait_for(lambda: ready()["status"] == "ready", timeout=60)
        assert served_by() == v1
    assert not marker.exists()  # the tampered code never ran
