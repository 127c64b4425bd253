"""On a real MLflow registry: ``promote`` promotes only the version that went through the canary
(its rollout was started) and only the version the caller means (compare-and-swap); a rollout
left open past its budget and grace (its flow crashed) is rolled back, audited."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from driftloop.cli import main
from driftloop.errors import ConflictError
from driftloop.loop.rollout import reset_stale_rollout
from driftloop.registry import promotion
from driftloop.registry.client import get_client, register_version, registry_snapshot
from driftloop.registry.promotion import read_audit
from driftloop.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(make_settings: Callable[..., Settings], mlflow_server: str) -> Settings:
    key = uuid.uuid4().hex[:8]
    return make_settings(
        mlflow_uri=mlflow_server,
        mlflow={"registered_model": f"guards-{key}", "experiment": f"guards-{key}"},
        rollout={"max_minutes": 30, "stale_grace_minutes": 10},
    )


@pytest.fixture
def new_version(settings: Settings) -> Callable[[str], str]:
    """``new_version(alias)``: a plain run artifact registered (never loaded) and given
    ``alias`` through the audited writer; returns its version."""
    client = get_client(settings)
    exp = client.create_experiment(settings.mlflow.experiment)

    def make(alias: str) -> str:
        run = client.create_run(exp)
        client.log_text(run.info.run_id, "not a model", "plain/README.txt")
        version = register_version(
            f"runs:/{run.info.run_id}/plain", run.info.run_id, {}, settings
        ).version
        promotion.assign_alias_after_gate(version, alias, "test", settings=settings)
        return version

    return make


def test_promote_without_a_canary_is_409_and_changes_nothing(
    settings: Settings, new_version: Callable[[str], str], capsys: pytest.CaptureFixture[str]
) -> None:
    v1, v2 = new_version("champion"), new_version("challenger")
    n = len(read_audit(settings))
    with pytest.raises(ConflictError, match="did not go through a canary") as err:
        promotion.promote("t", "skip the canary", None, settings)
    assert err.value.status_code == 409
    with pytest.raises(SystemExit) as exit_:
        main(["promote", "--reason", "skip it"])
    assert exit_.value.code == 1
    assert "did not go through a canary" in capsys.readouterr().err
    snap = registry_snapshot(settings)
    assert (snap.champion, snap.challenger) == (v1, v2)
    assert len(read_audit(settings)) == n


def test_promote_refuses_a_challenger_registered_after_the_rollout_started(
    settings: Settings, new_version: Callable[[str], str]
) -> None:
    new_version("champion")
    new_version("challenger")
    promotion.start_rollout(20, "rollout", settings)
    v3 = new_version("challenger")  # replaces the challenger whose canary ran
    with pytest.raises(ConflictError, match=f"version {v3} .* did not go through a canary"):
        promotion.promote("t", "", None, settings)
    assert registry_snapshot(settings).challenger == v3


def test_promote_is_compare_and_swap_on_the_version_meant(
    settings: Settings, new_version: Callable[[str], str]
) -> None:
    v1, v2 = new_version("champion"), new_version("challenger")
    promotion.start_rollout(20, "rollout", settings)
    with pytest.raises(ConflictError, match=f"now version {v2}, not {v1}"):
        promotion.promote("t", "", None, settings, expected_challenger=v1)
    with pytest.raises(SystemExit):
        main(["promote", "--version", v1])
    main(["promote", "--version", v2, "--reason", "canary passed"])
    snap = registry_snapshot(settings)
    assert (snap.champion, snap.challenger, snap.weight) == (v2, None, 0)
    assert read_audit(settings)[-1]["action"] == "promote"


def test_a_stale_rollout_is_rolled_back_after_budget_and_grace(
    settings: Settings, new_version: Callable[[str], str]
) -> None:
    v1, v2 = new_version("champion"), new_version("challenger")
    promotion.start_rollout(25, "rollout", settings)
    started = datetime.fromisoformat(registry_snapshot(settings).rollout_started or "")
    assert reset_stale_rollout(settings=settings, now=started + timedelta(minutes=39)) is None
    assert registry_snapshot(settings).weight == 25  # still within budget + grace

    record = reset_stale_rollout(settings=settings, now=started + timedelta(minutes=41))
    assert record is not None
    assert record["action"] == "rollback"
    assert record["reason"].startswith("stale rollout: version " + v2)
    assert (record["weight_before"], record["weight_after"]) == (25, 0)
    snap = registry_snapshot(settings)
    assert (snap.champion, snap.challenger, snap.weight) == (v1, None, 0)
    assert reset_stale_rollout(settings=settings, now=datetime.now(UTC) + timedelta(days=1)) is None


def test_rollout_status_resets_a_stale_rollout(
    settings: Settings, new_version: Callable[[str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    new_version("champion")
    new_version("challenger")
    promotion.start_rollout(25, "rollout", settings)
    # The rollout's stamp, rewritten two hours into the past (its flow died long ago).
    snap = registry_snapshot(settings)
    past = (datetime.now(UTC) - timedelta(hours=2)).isoformat()
    get_client(settings).set_registered_model_tag(
        snap.name, "driftloop.rollout_started", f"{past}|{snap.challenger}"
    )
    main(["rollout", "status"])
    after = registry_snapshot(settings)
    assert (after.challenger, after.weight) == (None, 0)
    assert read_audit(settings)[-1]["reason"].startswith("stale rollout")
