"""The reconciler against a scripted registry (the real MLflow path is in the integration
tests): hot swap, handle reuse on promotion, a challenger that fails to load, an outage."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from driftloop.errors import ServiceUnavailableError
from driftloop.registry.client import RegistrySnapshot
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

    def snapshot(self, settings: Settings, name: str) -> RegistrySnapshot:
        if self.down:
            raise ServiceUnavailableError("MLflow is unreachable")
        return RegistrySnapshot(name, self.champion, self.challenger, self.weight, None)

    def load(self, name: str, version: str, settings: Settings) -> ModelHandle:
        self.loads.append(version)
        if version in self.broken:
            raise RuntimeError("artifact missing")
        return ModelHandle(name, version, lambda df: np.full(len(df), float(version) / 10))


@pytest.fixture
def scripted(tmp_path: Path) -> tuple[ScriptedRegistry, Reconciler]:
    reg = ScriptedRegistry()
    return reg, Reconciler(Settings(state_dir=tmp_path), reg.load, reg.snapshot)


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
