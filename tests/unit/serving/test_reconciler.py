"""The reconciler against a scripted registry (the real MLflow path is in the integration
tests): hot swap, handle reuse on promotion, a challenger that fails to load, an outage, and the
champion that never disappears by accident (alias deleted, unloadable or tampered version)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from driftloop.errors import ModelIntegrityError, ServiceUnavailableError
from driftloop.registry.client import RegistrySnapshot
from driftloop.registry.promotion import read_audit
from driftloop.settings import Settings
from serving.handles import ModelHandle, Reconciler


class ScriptedRegistry:
    """Stands in for MLflow in these unit tests only."""

    def __init__(self) -> None:
        self.champion: str | None = "1"
        self.challenger: str | None = None
        self.weight = 0
        self.down = False
        self.loads: list[str] = []
        self.broken: set[str] = set()
        self.tampered: set[str] = set()
        self.external: list[RegistrySnapshot] = []

    def snapshot(self, settings: Settings, name: str) -> RegistrySnapshot:
        if self.down:
            raise ServiceUnavailableError("MLflow is unreachable")
        return RegistrySnapshot(name, self.champion, self.challenger, self.weight, None)

    def load(self, name: str, version: str, settings: Settings) -> ModelHandle:
        self.loads.append(version)
        if version in self.broken:
            raise RuntimeError("artifact missing")
        if version in self.tampered:
            raise ModelIntegrityError(f"artifact of version {version} hashes to 0badc0de...")
        return ModelHandle(name, version, lambda df: np.full(len(df), float(version) / 10))


@pytest.fixture
def scripted(tmp_path: Path) -> tuple[ScriptedRegistry, Reconciler]:
    reg = ScriptedRegistry()
    rec = Reconciler(
        Settings(state_dir=tmp_path), reg.load, reg.snapshot, lambda s, _: reg.external.append(s)
    )
    return reg, rec


def test_reconcile_loads_swaps_and_reuses_handles(
    scripted: tuple[ScriptedRegistry, Reconciler],
) -> None:
    reg, rec = scripted
    assert rec.health()["status"] == "not_ready"
    first = rec.reconcile_once()
    assert first.champion is not None
    assert first.champion.version == "1"
    assert rec.health()["status"] == "ready"
    reg.challenger, reg.weight = "2", 25
    second = rec.reconcile_once()
    assert second.challenger is not None
    assert second.challenger.version == "2"
    assert second.weight == 25
    assert first.challenger is None  # the old state object is untouched (requests keep it)
    reg.champion, reg.challenger, reg.weight = "2", None, 0  # promotion
    third = rec.reconcile_once()
    assert third.champion is second.challenger  # same handle: no reload
    assert reg.loads == ["1", "2"]


def test_challenger_that_fails_to_load_gets_no_traffic(
    scripted: tuple[ScriptedRegistry, Reconciler],
) -> None:
    reg, rec = scripted
    reg.challenger, reg.weight, reg.broken = "3", 50, {"3"}
    state = rec.reconcile_once()
    assert state.champion is not None
    assert state.challenger is None
    rec.reconcile_once()
    assert reg.loads.count("3") == 1  # not retried on every pass
    assert rec.health()["status"] == "ready"


def test_registry_outage_keeps_last_models_and_reports_degraded(
    scripted: tuple[ScriptedRegistry, Reconciler],
) -> None:
    reg, rec = scripted
    before = rec.reconcile_once()
    reg.down = True
    during = rec.reconcile_once()
    assert during is before
    health = rec.health()
    assert health["status"] == "degraded"
    assert "unreachable" in health["last_error"]
    reg.down, reg.champion = False, "4"
    after = rec.reconcile_once()
    assert after.champion is not None
    assert after.champion.version == "4"
    assert rec.health()["status"] == "ready"


def test_a_new_champion_that_fails_to_load_keeps_the_old_one(
    scripted: tuple[ScriptedRegistry, Reconciler],
) -> None:
    reg, rec = scripted
    rec.reconcile_once()
    reg.champion, reg.broken = "5", {"5"}
    state = rec.reconcile_once()
    assert state.champion is not None
    assert state.champion.version == "1"
    health = rec.health()
    assert health["status"] == "degraded"
    assert health["champion"] == "1"
    assert "champion version 5 cannot be served (artifact missing)" in health["last_error"]
    reg.champion = "1"  # the registry is put right: ready again
    rec.reconcile_once()
    assert rec.health()["status"] == "ready"
    assert rec.health()["last_error"] is None


def test_champion_alias_deleted_keeps_the_last_champion_and_reports_degraded(
    scripted: tuple[ScriptedRegistry, Reconciler],
) -> None:
    reg, rec = scripted
    rec.reconcile_once()
    reg.champion = None
    state = rec.reconcile_once()
    assert state.champion is not None
    assert state.champion.version == "1"
    health = rec.health()
    assert health["status"] == "degraded"
    assert "champion alias" in health["last_error"]
    assert "version 1" in health["last_error"]
    reg.champion = "1"
    rec.reconcile_once()
    assert rec.health()["status"] == "ready"
    assert reg.loads == ["1"]  # the kept handle is reused, never reloaded


def test_no_champion_ever_is_not_ready_without_error(
    scripted: tuple[ScriptedRegistry, Reconciler],
) -> None:
    reg, rec = scripted
    reg.champion = None
    state = rec.reconcile_once()
    assert state.champion is None
    assert rec.health()["status"] == "not_ready"
    assert rec.health()["last_error"] is None


def test_a_first_champion_that_cannot_load_is_not_ready_with_the_reason(
    scripted: tuple[ScriptedRegistry, Reconciler],
) -> None:
    reg, rec = scripted
    reg.broken = {"1"}
    rec.reconcile_once()
    health = rec.health()
    assert health["status"] == "not_ready"
    assert "artifact missing" in health["last_error"]


def test_tampered_challenger_is_refused_listed_and_audited_once(
    scripted: tuple[ScriptedRegistry, Reconciler],
) -> None:
    reg, rec = scripted
    reg.challenger, reg.weight, reg.tampered = "6", 30, {"6"}
    state = rec.reconcile_once()
    assert state.challenger is None  # no traffic
    health = rec.health()
    assert health["status"] == "ready"  # the champion serves everybody
    assert "0badc0de" in health["refused"]["6"]
    rec.reconcile_once()
    (record,) = [r for r in read_audit(rec.settings) if r["action"] == "artifact_refused"]
    assert (record["to_version"], record["actor"]) == ("6", "serving")
    assert record["metrics"] == {"role": "challenger"}
    assert "0badc0de" in record["reason"]
    reg.challenger, reg.weight = None, 0  # dropped from the registry: no longer listed
    rec.reconcile_once()
    assert rec.health()["refused"] == {}


def test_tampered_champion_keeps_the_last_good_one_and_says_why(
    scripted: tuple[ScriptedRegistry, Reconciler],
) -> None:
    reg, rec = scripted
    rec.reconcile_once()
    reg.champion, reg.tampered = "7", {"7"}
    state = rec.reconcile_once()
    assert state.champion is not None
    assert state.champion.version == "1"
    health = rec.health()
    assert health["status"] == "degraded"
    assert "champion version 7 cannot be served" in health["last_error"]
    assert "7" in health["refused"]
    actions = [(r["action"], r["to_version"]) for r in read_audit(rec.settings)]
    assert actions == [("artifact_refused", "7")]


def test_external_changes_are_checked_after_each_successful_snapshot_only(
    scripted: tuple[ScriptedRegistry, Reconciler],
) -> None:
    reg, rec = scripted
    rec.reconcile_once()
    reg.down = True
    rec.reconcile_once()
    assert [s.champion for s in reg.external] == ["1"]


def test_a_failing_external_check_does_not_stop_serving(tmp_path: Path) -> None:
    reg = ScriptedRegistry()

    def broken(snap: RegistrySnapshot, settings: Settings) -> None:
        raise RuntimeError("audit log unreadable")

    rec = Reconciler(Settings(state_dir=tmp_path), reg.load, reg.snapshot, broken)
    state = rec.reconcile_once()
    assert state.champion is not None
    assert rec.health()["status"] == "ready"


def test_replica_readiness_lets_a_fresh_install_finish_but_keeps_cold_replicas_out(
    scripted: tuple[ScriptedRegistry, Reconciler],
) -> None:
    """Kubernetes readiness (/v2/health/replica): a release with no model yet must become
    ready (or `helm install --wait` never ends), a replica that has not loaded an existing
    champion must not."""
    reg, rec = scripted
    ok, why = rec.takes_traffic()
    assert not ok, "ready before the registry was read"
    assert "not been read" in why
    reg.down = True
    rec.reconcile_once()
    assert rec.takes_traffic()[0] is False  # registry unreachable, nothing loaded
    reg.down, reg.champion = False, None
    rec.reconcile_once()
    ok, why = rec.takes_traffic()
    assert ok, why
    assert "names no champion" in why
    assert rec.health()["status"] == "not_ready"  # the OIP readiness keeps saying no model
    reg.champion, reg.broken = "4", {"4"}  # a champion appears that this replica cannot load
    rec.reconcile_once()
    assert rec.takes_traffic()[0] is False
    reg.broken = set()
    rec._failed.clear()  # skip the load retry back-off
    rec.reconcile_once()
    assert rec.takes_traffic() == (True, "serving champion version 4")
    reg.down = True  # an outage later: the loaded champion keeps serving
    rec.reconcile_once()
    assert rec.takes_traffic()[0] is True
