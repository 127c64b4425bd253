"""Every alias change on a real MLflow registry leaves one audit record with the right action,
versions and weights: the training gate's registration (first champion, a challenger), set
weight, mode, promote, rollout start, rollback and the demo's reset. The training step is
``driftloop.training.pipeline.register`` itself, fed a tiny model instead of a training run."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from driftloop.cli import main
from driftloop.errors import NotFoundError, TrainingError
from driftloop.registry import audit, promotion
from driftloop.registry.client import ROLLOUT_TAG, RegistrySnapshot, get_version, registry_snapshot
from driftloop.registry.promotion import read_audit
from driftloop.settings import Settings

pytestmark = pytest.mark.integration

FAKE_MODEL = Path(__file__).parents[1] / "serving" / "fake_model.py"
GATE_METRICS = {"model": {"roc_auc": 0.71, "threshold": 0.31}, "baseline": {"roc_auc": 0.5}}


@pytest.fixture
def settings(make_settings: Callable[..., Settings], mlflow_server: str) -> Settings:
    key = uuid.uuid4().hex[:8]
    return make_settings(
        mlflow_uri=mlflow_server,
        mlflow={"registered_model": f"audit-{key}", "experiment": f"audit-{key}"},
    )


@pytest.fixture
def plain_source(settings: Settings) -> tuple[str, str]:
    """``(runs:/... uri, run id)``: a run artifact registered as a plain source (never loaded)."""
    from driftloop.registry.client import get_client

    client = get_client(settings)
    run = client.create_run(client.create_experiment(settings.mlflow.experiment))
    client.log_text(run.info.run_id, "not a model, never loaded", "plain/README.txt")
    client.set_terminated(run.info.run_id)
    return f"runs:/{run.info.run_id}/plain", run.info.run_id


@pytest.fixture
def logged_source(settings: Settings, plain_source: tuple[str, str]) -> Iterator[tuple[str, str]]:
    """``(models:/m-... uri, run id)``: an MLflow 3 logged pyfunc (tiny). The global tracking
    URI is restored afterwards."""
    import mlflow  # imported here: ~3 s, which collection should not pay for

    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(settings.mlflow.uri)
    # The fluent API's active experiment may be an earlier test's: resuming a run of another
    # experiment is refused, so activate this run's experiment first.
    mlflow.set_experiment(settings.mlflow.experiment)
    try:
        with mlflow.start_run(run_id=plain_source[1]) as run:
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=str(FAKE_MODEL),
                model_config={"bias": -1.0},
                pip_requirements=["mlflow"],
            )
        yield str(info.model_uri), run.info.run_id
    finally:
        mlflow.set_tracking_uri(previous)


def _register(settings: Settings, source: tuple[str, str], gate: str, tmp: Path) -> str:
    """The training pipeline's register step for a model that got ``gate``."""
    # Imported here: the training package imports torch, which collection should not pay for.
    from driftloop.training.inputs import TrainingData
    from driftloop.training.job import Evaluation, FittedRun, TrainJob
    from driftloop.training.pipeline import register
    from driftloop.training.trainer import TrainParams

    data = TrainingData(
        train=pd.DataFrame(),
        holdout=pd.DataFrame(),
        months=["2013-01"],
        holdout_month="2013-02",
        data_rev="test",
        feature_service="test_v1",
    )
    job = TrainJob(data, TrainParams(), tmp / f"ckpt-{uuid.uuid4().hex[:6]}", "test")
    model_uri, run_id = source
    fitted = FittedRun(run_id, model_uri, None, [], "cpu", 0.0, 0)  # type: ignore[arg-type]
    evaluation = Evaluation(GATE_METRICS, gate, f"test gate: {gate}", None)
    return register(job, fitted, evaluation, settings).version


def _audited(settings: Settings, act: Callable[[], Any]) -> tuple[dict[str, Any], RegistrySnapshot]:
    """Run ``act``; exactly one new audit record, whose weights are the registry's before/after
    and whose line and hash the registry now holds as the anchored head of the chain."""
    before, n = registry_snapshot(settings), len(read_audit(settings))
    act()
    after, records = registry_snapshot(settings), read_audit(settings)
    assert len(records) == n + 1, records[n:]
    record = records[-1]
    assert record["model"] == settings.mlflow.registered_model
    assert (record["weight_before"], record["weight_after"]) == (before.weight, after.weight)
    assert after.tags[audit.HEAD_TAG] == f"{n + 1}:{record['hash']}"
    return record, after


def _moved(record: dict[str, Any]) -> tuple[str, str | None, str | None]:
    return record["action"], record["from_version"], record["to_version"]


def test_every_alias_change_leaves_an_audit_record(
    settings: Settings,
    logged_source: tuple[str, str],
    plain_source: tuple[str, str],
    tmp_path: Path,
) -> None:
    logged, plain = logged_source, plain_source
    versions: list[str] = []

    def train(source: tuple[str, str], gate: str) -> Callable[[], None]:
        return lambda: versions.append(_register(settings, source, gate, tmp_path))

    # Training: the first champion (an MLflow 3 logged model), then a challenger (a plain source).
    record, snap = _audited(settings, train(logged, "champion"))
    v1 = versions[-1]
    assert _moved(record) == ("register_champion", None, v1)
    assert record["actor"] == "train"
    assert record["reason"] == "test gate: champion"
    # the gate's record holds the KPIs it decided against; the version its decision threshold
    assert record["metrics"] == {**GATE_METRICS, "kpi": settings.kpi.model_dump(mode="json")}
    assert (snap.champion, snap.challenger) == (v1, None)
    tags = get_version(v1, settings).tags
    assert tags["driftloop.gate"] == "champion"
    assert float(tags["driftloop.threshold"]) == 0.31
    assert json.loads(tags["driftloop.kpi"]) == settings.kpi.model_dump(mode="json")

    record, snap = _audited(settings, train(plain, "challenger"))
    v2 = versions[-1]
    assert _moved(record) == ("register_challenger", None, v2)
    assert (snap.champion, snap.challenger, snap.weight) == (v1, v2, 0)

    # A rejected model gets no alias, so no record.
    n = len(read_audit(settings))
    rejected = _register(settings, plain, "rejected", tmp_path)
    assert get_version(rejected, settings).aliases == ()
    assert len(read_audit(settings)) == n
    assert registry_snapshot(settings).challenger == v2

    # Weight and mode.
    record, snap = _audited(settings, lambda: promotion.set_weight(40, "t", "try", settings))
    assert _moved(record) == ("set_weight", v1, v2)
    assert snap.weight == 40
    record, snap = _audited(settings, lambda: promotion.set_mode("shadow", "t", "mirror", settings))
    assert _moved(record) == ("set_mode", v1, v2)
    assert record["metrics"] == {"mode_before": None, "mode_after": "shadow"}
    assert snap.mode == "shadow"
    record, snap = _audited(settings, lambda: promotion.set_mode("", "t", "back", settings))
    assert snap.mode is None

    # Promote: champion <- challenger (only after its canary rollout started).
    record, snap = _audited(settings, lambda: promotion.start_rollout(40, "rollout", settings))
    assert _moved(record) == ("rollout_start", v1, v2)
    record, snap = _audited(settings, lambda: promotion.promote("t", "good", {"auc": 1}, settings))
    assert _moved(record) == ("promote", v1, v2)
    assert record["replaced_version"] == v1
    assert get_version(v2, settings).tags["driftloop.replaced_version"] == v1
    assert (record["weight_before"], record["weight_after"]) == (40, 0)
    assert (snap.champion, snap.challenger, snap.weight) == (v2, None, 0)

    # A new challenger, rolled out and rolled back.
    record, snap = _audited(settings, train(plain, "challenger"))
    v3 = versions[-1]
    assert _moved(record) == ("register_challenger", None, v3)
    record, snap = _audited(settings, lambda: promotion.start_rollout(25, "rollout", settings))
    assert _moved(record) == ("rollout_start", v2, v3)
    assert snap.weight == 25
    assert snap.tags[ROLLOUT_TAG].endswith(f"|{v3}")
    record, snap = _audited(settings, lambda: promotion.rollback("t", "bad", None, settings))
    assert _moved(record) == ("rollback", v3, v2)
    assert (record["weight_before"], record["weight_after"]) == (25, 0)
    assert (snap.champion, snap.challenger) == (v2, None)

    # A challenger that the demo resets away.
    _audited(settings, train(plain, "challenger"))
    v4 = versions[-1]
    _audited(settings, lambda: promotion.set_weight(10, "t", "", settings))
    record, snap = _audited(settings, lambda: promotion.reset_champion(v1, settings=settings))
    assert _moved(record) == ("demo_reset", v2, v1)
    assert (record["weight_before"], record["weight_after"]) == (10, 0)
    assert (snap.champion, snap.challenger) == (v1, None)
    assert promotion.reset_champion(v1, settings=settings) is None  # already so: no change

    assert [r["action"] for r in read_audit(settings)] == [
        "register_champion",
        "register_challenger",
        "set_weight",
        "set_mode",
        "set_mode",
        "rollout_start",
        "promote",
        "register_challenger",
        "rollout_start",
        "rollback",
        "register_challenger",
        "set_weight",
        "demo_reset",
    ]
    assert v4 not in (snap.champion, snap.challenger)


def test_a_version_whose_alias_cannot_be_set_is_removed_and_the_failure_audited(
    settings: Settings,
    plain_source: tuple[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("registry said no")

    monkeypatch.setattr(promotion, "_set_alias", refuse)
    with pytest.raises(TrainingError, match="removed"):
        _register(settings, plain_source, "champion", tmp_path)
    (record,) = read_audit(settings)  # the attempt is on record, with what failed
    assert record["action"] == "register_champion"
    assert record["error"] == "write 1 of 1 failed: RuntimeError: registry said no"
    assert registry_snapshot(settings).tags[audit.HEAD_TAG] == f"1:{record['hash']}"  # anchored
    with pytest.raises(NotFoundError):
        get_version("1", settings)
    assert registry_snapshot(settings).champion is None


def test_cli_rollout_mode_sets_the_registry_override_audited(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["rollout", "mode", "shadow", "--reason", "watch it first"])
    assert registry_snapshot(settings).mode == "shadow"
    main(["rollout", "mode", "settings"])
    assert registry_snapshot(settings).mode is None
    assert [(r["action"], r["metrics"]["mode_after"]) for r in read_audit(settings)] == [
        ("set_mode", "shadow"),
        ("set_mode", None),
    ]
    with pytest.raises(SystemExit) as exit_:
        main(["rollout", "mode", "blue"])
    assert exit_.value.code == 1
    assert (
        capsys.readouterr().err.strip().endswith("canary mode must be canary or shadow, got 'blue'")
    )
    assert len(read_audit(settings)) == 2  # nothing written for the bad value
