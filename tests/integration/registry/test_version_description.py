"""The "why" of each model version in MLflow, on a real registry: the description states the
gate's decision and reason, the rollout outcome and reason (rewritten at rollout start,
promotion, rollback and restore), data revision, git commit and links; the standing tag
``driftloop.gate`` follows the version (a promoted challenger reads ``champion``, the gate's own
decision stays in ``driftloop.gate_decision``); a large JSON tag is a run artifact with a short
pointer tag; the rollout stamp leaves the registered model when the rollout ends. The second
test runs on an MLflow server with basic auth: the rollout user, which may not touch runs,
keeps the descriptions current."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest

from driftloop.registry import description, promotion
from driftloop.registry.client import (
    ROLLOUT_TAG,
    get_client,
    get_version,
    registry_snapshot,
    set_version_tags,
)
from driftloop.registry.json_tags import ARTIFACT_DIR
from driftloop.settings import MlflowSettings, Settings, embedded_mlflow_credentials

pytestmark = pytest.mark.integration

HASHES = {
    f"{table}/2013-0{m}": f"{m}{table[0]}" * 16
    for table in ("flights", "weather")
    for m in (1, 2, 3)
}
HASHES["planes/planes"] = "f" * 32
PREFECT_RUN = "http://127.0.0.1:4200/flow-runs/flow-run/0f0e0d0c-aaaa-bbbb-cccc-000000000001"
DRIFT_REPORT = "http://127.0.0.1:5000/get-artifact?path=drift%2Freport.html&run_uuid=abc"
GATE_METRICS = {"model": {"roc_auc": 0.71, "threshold": 0.31}, "baseline": {"roc_auc": 0.5}}


def _run(settings: Settings) -> tuple[str, str]:
    """``(runs:/... source, run id)``: a run with a plain artifact (registered, never loaded)."""
    client = get_client(settings)
    experiment = client.get_experiment_by_name(settings.mlflow.experiment)
    exp_id = (
        experiment.experiment_id
        if experiment is not None
        else client.create_experiment(settings.mlflow.experiment)
    )
    run = client.create_run(exp_id)
    client.log_text(run.info.run_id, "not a model, never loaded", "plain/README.txt")
    client.set_terminated(run.info.run_id)
    return f"runs:/{run.info.run_id}/plain", run.info.run_id


@pytest.fixture
def register(settings: Settings, tmp_path: Path) -> Callable[..., str]:
    """``register(gate, compared_with)``: the training pipeline's register step for a model
    the gate decided ``gate`` on; returns the version."""
    # Imported here: the training package imports torch, which collection should not pay for.
    from driftloop.training.inputs import TrainingData
    from driftloop.training.job import Evaluation, FittedRun, TrainJob
    from driftloop.training.pipeline import register as register_step
    from driftloop.training.trainer import TrainParams

    def make(gate: str, compared_with: str | None = None) -> str:
        data = TrainingData(
            train=pd.DataFrame(),
            holdout=pd.DataFrame(),
            months=["2013-01", "2013-02"],
            holdout_month="2013-03",
            data_rev="0123456789abcdef",
            data_hashes=dict(HASHES),
            feature_service="test_v1",
        )
        job = TrainJob(data, TrainParams(), tmp_path / f"ckpt-{uuid.uuid4().hex[:6]}", "test")
        model_uri, run_id = _run(settings)
        fitted = FittedRun(run_id, model_uri, None, [], "cpu", 0.0, 0)  # type: ignore[arg-type]
        reason = f"test gate: {gate} because the numbers said so"
        evaluation = Evaluation(GATE_METRICS, gate, reason, compared_with)
        return register_step(job, fitted, evaluation, settings, prefect_run=PREFECT_RUN).version

    return make


def _described(settings: Settings, version: str) -> tuple[str, dict[str, str]]:
    mv = get_client(settings).get_model_version(settings.mlflow.registered_model, version)
    return str(mv.description or ""), dict(mv.tags)


def test_descriptions_follow_the_gate_and_every_rollout_outcome(
    settings: Settings, register: Callable[..., str], tmp_path: Path
) -> None:
    from driftloop.training.lineage import resolve_version

    # The gate: a first champion, described at registration.
    v1 = register("champion")
    text, tags = _described(settings, v1)
    assert "**Now:** champion" in text
    assert "**Gate:** champion: test gate: champion because the numbers said so" in text
    assert "**Rollout:** none yet." in text
    assert "revision `0123456789abcdef`, window 2013-01..2013-02, holdout 2013-03" in text
    assert f"git commit `{tags['driftloop.git_commit']}`" in text
    assert f"[training run (Prefect)]({PREFECT_RUN})" in text
    # the model card (a runs:/ artifact in its tag) links to its page in the MLflow UI
    card_page = f"/runs/{tags['driftloop.run_id']}/artifactPath/model_card/card.md)"
    assert f"[model card]({settings.mlflow.browser_url}/#/experiments/" in text
    assert card_page in text
    assert (tags["driftloop.gate"], tags["driftloop.gate_decision"]) == ("champion", "champion")

    # A large JSON tag is an artifact of the run; the tag is a short pointer to it.
    run_id = tags["driftloop.run_id"]
    pointer = tags["driftloop.data_hashes"]
    assert pointer == f"runs:/{run_id}/{ARTIFACT_DIR}/driftloop.data_hashes.json"
    assert len(json.dumps(HASHES)) > 200 > len(pointer)
    local = get_client(settings).download_artifacts(
        run_id, f"{ARTIFACT_DIR}/driftloop.data_hashes.json", str(tmp_path)
    )
    assert json.loads(Path(local).read_text()) == HASHES
    assert json.loads(tags["driftloop.kpi"]) == settings.kpi.model_dump(mode="json")  # short
    resolved = resolve_version(v1, settings)  # readers (lineage, reproduce) get the value
    assert json.loads(resolved.tags["driftloop.data_hashes"]) == HASHES

    # The monitor judged v1 (its report tag); the next version links the report behind it.
    set_version_tags(v1, {description.TAG_DRIFT_REPORT: DRIFT_REPORT}, settings)
    v2 = register("challenger", compared_with=v1)
    text, tags = _described(settings, v2)
    assert "**Now:** challenger" in text
    assert f"**Gate:** challenger against champion v{v1}: test gate: challenger" in text
    assert f"[drift report that led to this training]({DRIFT_REPORT})" in text

    # Rollout start, then promotion: the stamp goes, the standing and the why follow.
    promotion.start_rollout(20, "rollout", settings)
    text, tags = _described(settings, v2)
    assert "**Rollout:** canary at" in text
    assert "canary at 20 % of traffic" in text
    assert ROLLOUT_TAG in registry_snapshot(settings).tags
    result = promotion.promote("rollout", "[r-1] non-inferior on every metric", None, settings)
    assert "description_error" not in result
    assert ROLLOUT_TAG not in registry_snapshot(settings).tags
    text, tags = _described(settings, v2)
    assert (tags["driftloop.gate"], tags["driftloop.gate_decision"]) == ("champion", "challenger")
    assert tags["driftloop.rollout"] == "promoted"
    assert "**Now:** champion" in text
    assert "**Gate:** challenger" in text  # what the gate decided, still said
    assert "**Rollout:** promoted at" in text
    assert "[r-1] non-inferior on every metric" in text
    text, tags = _described(settings, v1)
    assert tags["driftloop.gate"] == "retired"
    assert f"replaced as champion by v{v2}: [r-1] non-inferior" in text
    assert "**Now:** retired" in text

    # A challenger rolled back: recorded on the version, not only in Prefect.
    v3 = register("challenger", compared_with=v2)
    promotion.start_rollout(10, "rollout", settings)
    result = promotion.rollback(
        "rollout", "[r-2] error rate worse than the champion's", None, settings
    )
    assert "description_error" not in result
    assert ROLLOUT_TAG not in registry_snapshot(settings).tags
    text, tags = _described(settings, v3)
    assert (tags["driftloop.gate"], tags["driftloop.rollout"]) == ("rolled_back", "rolled_back")
    assert "**Now:** rolled back" in text
    assert "**Rollout:** rolled_back at" in text
    assert "[r-2] error rate worse than the champion's" in text

    # Restore: v1 is champion again, v2 set aside; both say so.
    promotion.restore(actor="cli", reason="v2 disappointed in production", settings=settings)
    text, tags = _described(settings, v1)
    assert (tags["driftloop.gate"], tags["driftloop.rollout"]) == ("champion", "restored")
    assert "v2 disappointed in production" in text
    text, tags = _described(settings, v2)
    assert tags["driftloop.gate"] == "retired"
    assert f"champion set back to v{v1}" in text
    # the lineage view shows the standing and the gate's own decision
    from driftloop.training.lineage import lineage

    lines = "\n".join(lineage(v2, settings, check=False).lines())
    assert "now          retired (gate decided challenger)" in lines


# ---- with MLflow's basic auth: the rollout user keeps the descriptions current ---------------
@pytest.fixture(scope="module")
def auth_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """The embedded MLflow server with basic auth, its users provisioned (as `driftloop up`)."""
    from driftloop.embedded.services import free_port, mlflow_service, start_service, stop_service
    from driftloop.registry.access import provision_embedded

    state = tmp_path_factory.mktemp("auth-description")
    platform = Settings(state_dir=state, mlflow=MlflowSettings(port=free_port()))
    service = mlflow_service(platform)
    start_service(service, platform)
    try:
        provision_embedded(platform)
        yield platform
    finally:
        stop_service(service, platform)


def _as(platform: Settings, role: str, monkeypatch: pytest.MonkeyPatch, rollout: bool) -> Settings:
    found = embedded_mlflow_credentials(platform, role)
    assert found is not None
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", found[0])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", found[1])
    auth: dict[str, object] = {}
    if rollout:
        user, password = embedded_mlflow_credentials(platform, "rollout") or ("", "")
        auth = {"rollout_username": user, "rollout_password": password}
    return Settings(
        state_dir=platform.state / "client",  # one audit log for both users
        mlflow={"tracking_uri": platform.mlflow.uri, "auth": auth},
    )


@pytest.mark.slow
def test_the_rollout_user_rewrites_descriptions_on_promotion_and_rollback(
    auth_platform: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from driftloop.registry.client import register_version

    flows = _as(auth_platform, "flows", monkeypatch, rollout=False)

    def new(gate: str) -> str:
        source, run_id = _run(flows)
        tags = {"driftloop.gate": gate, "driftloop.gate_reason": f"{gate} by the test gate"}
        version = register_version(source, run_id, tags, flows).version
        promotion.assign_alias_after_gate(version, gate, "test gate", settings=flows)
        return version

    v1, v2 = new("champion"), new("challenger")
    # serving's own user is read-only; its writers act as the rollout user (no run access)
    serving = _as(auth_platform, "serving", monkeypatch, rollout=True)
    promotion.start_rollout(20, "serving", serving)
    result = promotion.promote("serving", "canary passed", None, serving)
    assert "description_error" not in result
    assert "promotion_card_error" in result  # the rollout user may not write to the run
    text, tags = _described(serving, v2)
    assert (tags["driftloop.gate"], tags["driftloop.gate_decision"]) == ("champion", "challenger")
    assert "**Rollout:** promoted at" in text
    assert "canary passed" in text
    assert _described(serving, v1)[1]["driftloop.gate"] == "retired"

    flows = _as(auth_platform, "flows", monkeypatch, rollout=False)
    v3 = new("challenger")
    serving = _as(auth_platform, "serving", monkeypatch, rollout=True)
    promotion.start_rollout(20, "serving", serving)
    result = promotion.rollback("serving", "error rate worse", None, serving)
    assert "description_error" not in result
    text, tags = _described(serving, v3)
    assert tags["driftloop.gate"] == "rolled_back"
    assert "**Rollout:** rolled_back at" in text
    assert ROLLOUT_TAG not in registry_snapshot(serving).tags
    assert get_version(v3, serving).tags["driftloop.rollout_reason"] == "error rate worse"
