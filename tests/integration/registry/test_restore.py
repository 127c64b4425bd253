"""On a real MLflow registry: a promotion records the champion it replaces (version tag and audit
record); ``driftloop rollout restore [--to V]`` sets the champion back, drops the challenger and
its canary, and is audited in the anchored hash chain; it refuses, exit 1 with one line, when
there is nothing to restore to or V was never champion."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from driftloop.cli import main
from driftloop.errors import ConflictError
from driftloop.registry import audit, promotion
from driftloop.registry.client import (
    REPLACED_TAG,
    ROLLOUT_TAG,
    get_client,
    get_version,
    register_version,
    registry_snapshot,
)
from driftloop.registry.promotion import read_audit
from driftloop.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture
def new_version(settings: Settings) -> Callable[[], str]:
    """``new_version()``: a plain run artifact registered (never loaded: restore moves aliases
    only); returns its version."""
    client = get_client(settings)
    exp = client.create_experiment(settings.mlflow.experiment)

    def make() -> str:
        run = client.create_run(exp)
        client.log_text(run.info.run_id, "not a model", "plain/README.txt")
        source = f"runs:/{run.info.run_id}/plain"
        return register_version(source, run.info.run_id, {}, settings).version

    return make


def _canary_then_promote(settings: Settings, version: str) -> dict[str, object]:
    """``version`` becomes challenger, goes through a (started) canary and is promoted."""
    promotion.assign_alias_after_gate(version, "challenger", "gate", settings=settings)
    promotion.start_rollout(20, "rollout", settings)
    return promotion.promote("rollout", "canary passed", None, settings)


def _verified(settings: Settings) -> audit.Verification:
    anchor, why = audit.read_anchor(settings)
    assert anchor is not None, why
    return audit.verify(settings, anchor=anchor)


def test_restore_sets_the_replaced_champion_back_and_drops_the_canary_audited(
    settings: Settings, new_version: Callable[[], str], capsys: pytest.CaptureFixture[str]
) -> None:
    v1, v2, v3 = new_version(), new_version(), new_version()
    promotion.assign_alias_after_gate(v1, "champion", "first", settings=settings)
    promoted = _canary_then_promote(settings, v2)
    # the promotion recorded what it replaced: on the new champion, and in the audit record
    assert get_version(v2, settings).tags[REPLACED_TAG] == v1
    assert promoted["replaced_version"] == v1
    # a new challenger is on a canary when the champion is found wanting
    promotion.assign_alias_after_gate(v3, "challenger", "gate", settings=settings)
    promotion.start_rollout(30, "rollout", settings)
    assert registry_snapshot(settings).weight == 30
    capsys.readouterr()

    main(["rollout", "restore", "--reason", "v2 misses late flights"])

    snap = registry_snapshot(settings)
    assert (snap.champion, snap.challenger, snap.weight) == (v1, None, 0)
    assert ROLLOUT_TAG not in snap.tags
    assert f"champion {v2} -> {v1} (restored)" in capsys.readouterr().err
    record = read_audit(settings)[-1]
    assert record["action"] == "restore"
    assert (record["from_version"], record["to_version"]) == (v2, v1)
    assert record["actor"].startswith("cli:")
    assert record["reason"] == "v2 misses late flights"
    assert record["metrics"] == {"target_from": f"tag {REPLACED_TAG}", "dropped_challenger": v3}
    assert record["after"] == {"champion": v1, "challenger": None, "weight": 0, "mode": None}
    check = _verified(settings)
    assert check.intact, check.summary()
    assert check.anchored, check.summary()
    assert check.after_anchor == 0  # the restore is the anchored head


def test_restore_walks_back_through_the_champions_then_refuses(
    settings: Settings, new_version: Callable[[], str], capsys: pytest.CaptureFixture[str]
) -> None:
    v1, v2, v3 = new_version(), new_version(), new_version()
    promotion.assign_alias_after_gate(v1, "champion", "first", settings=settings)
    _canary_then_promote(settings, v2)
    _canary_then_promote(settings, v3)
    assert promotion.restore(None, "t", "", settings)["to_version"] == v2
    assert promotion.restore(None, "t", "", settings)["to_version"] == v1  # an undo, not a redo
    n = len(read_audit(settings))
    with pytest.raises(ConflictError, match=f"champion version {v1} .* nothing to restore to"):
        promotion.restore(None, "t", "", settings)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        main(["rollout", "restore"])
    assert exit_.value.code == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ")
    assert "nothing to restore to" in err
    assert len(err.splitlines()) == 1
    assert registry_snapshot(settings).champion == v1
    assert len(read_audit(settings)) == n  # a refusal writes nothing
    assert _verified(settings).intact


def test_restore_to_a_named_former_champion_only(
    settings: Settings, new_version: Callable[[], str], capsys: pytest.CaptureFixture[str]
) -> None:
    v1, v2, v3, never = new_version(), new_version(), new_version(), new_version()
    promotion.assign_alias_after_gate(v1, "champion", "first", settings=settings)
    _canary_then_promote(settings, v2)
    _canary_then_promote(settings, v3)
    promotion.assign_alias_after_gate(never, "challenger", "gate", settings=settings)
    n = len(read_audit(settings))
    refusals = {
        never: f"version {never} of model .* was never champion",
        "abc": "must be a version number",
        v3: "is the champion already",
    }
    for to, message in refusals.items():
        capsys.readouterr()
        with pytest.raises(SystemExit) as exit_:
            main(["rollout", "restore", "--to", to])
        assert exit_.value.code == 1
        err = capsys.readouterr().err
        assert err.startswith("error: ")
        assert len(err.strip().splitlines()) == 1
        assert re.search(message, err), err
    snap = registry_snapshot(settings)
    assert (snap.champion, snap.challenger) == (v3, never)  # refusals changed nothing
    assert len(read_audit(settings)) == n

    main(["rollout", "restore", "--to", v1])
    record = read_audit(settings)[-1]
    assert (record["action"], record["from_version"], record["to_version"]) == ("restore", v3, v1)
    assert record["metrics"]["target_from"] == "requested"
    snap = registry_snapshot(settings)
    assert (snap.champion, snap.challenger) == (v1, None)
    assert _verified(settings).intact


def test_restore_without_a_champion_is_refused(settings: Settings) -> None:
    with pytest.raises(ConflictError, match="has no champion: there is nothing to restore"):
        promotion.restore(None, "t", "", settings)
    assert read_audit(settings) == []
