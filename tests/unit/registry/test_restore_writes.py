"""Restore and the stored decision threshold against an in-memory registry (the real MLflow path
is in tests/integration/registry/test_restore.py): the writes come in a serving-safe order, the
target comes from the champion's tag or else the audit log, refusals write nothing, and a
threshold tag that is not a probability is refused."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from test_registry_writers import FakeRegistry

from driftloop.errors import ConflictError, InvalidInputError, NotFoundError
from driftloop.registry import audit, promotion
from driftloop.registry.client import (
    REPLACED_TAG,
    ROLLOUT_TAG,
    THRESHOLD_TAG,
    WEIGHT_TAG,
    VersionInfo,
    decision_threshold,
)
from driftloop.registry.promotion import read_audit
from driftloop.settings import Settings


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeRegistry:
    reg = FakeRegistry()
    monkeypatch.setattr(promotion, "registry_snapshot", reg.snapshot)
    monkeypatch.setattr(promotion, "_set_alias", reg.set_alias)
    monkeypatch.setattr(promotion, "_delete_alias", reg.delete_alias)
    monkeypatch.setattr(promotion, "_set_model_tag", reg.set_tag)
    monkeypatch.setattr(promotion, "_delete_model_tag", reg.delete_tag)
    monkeypatch.setattr(promotion, "_set_version_tag", reg.set_version_tag)
    monkeypatch.setattr(promotion, "get_version", reg.get_version)
    # version descriptions (MLflow model version edits) are tested on a real registry:
    # tests/integration/registry/test_version_description.py
    monkeypatch.setattr(promotion, "describe_change", reg.describe_change)
    for version in "1234":
        reg.versions[version] = {}
    return reg


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


def _promote(fake: FakeRegistry, version: str, settings: Settings) -> None:
    promotion.assign_alias_after_gate(version, "challenger", "gate", settings=settings)
    promotion.start_rollout(10, "rollout", settings)
    promotion.promote("rollout", "canary passed", None, settings)


def test_restore_moves_the_champion_first_then_drops_challenger_and_canary(
    fake: FakeRegistry, settings: Settings
) -> None:
    promotion.assign_alias_after_gate("1", "champion", "first", settings=settings)
    _promote(fake, "2", settings)
    promotion.assign_alias_after_gate("3", "challenger", "gate", settings=settings)
    promotion.start_rollout(30, "rollout", settings)
    fake.writes.clear()
    record = promotion.restore(None, "t", "", settings)
    assert fake.writes == [
        ("set_alias", "champion", "1"),  # replicas serve the restored champion first
        ("set_tag", WEIGHT_TAG, "0"),
        ("delete_alias", "challenger"),
        ("delete_tag", ROLLOUT_TAG),
        ("set_tag", audit.HEAD_TAG, f"{len(read_audit(settings))}:{record['hash']}"),
    ]
    assert (record["action"], record["from_version"], record["to_version"]) == ("restore", "2", "1")
    assert record["reason"] == "restore version 1 as champion"
    assert (record["weight_before"], record["weight_after"]) == (30, 0)
    assert fake.versions["1"] == {}  # restore re-tags nothing: a second one goes further back


def test_the_audit_log_names_the_replaced_champion_when_the_tag_is_missing(
    fake: FakeRegistry, settings: Settings
) -> None:
    promotion.assign_alias_after_gate("1", "champion", "first", settings=settings)
    _promote(fake, "2", settings)
    del fake.versions["2"][REPLACED_TAG]  # e.g. promoted before the tag existed
    record = promotion.restore(None, "t", "why", settings)
    assert record["to_version"] == "1"
    assert record["metrics"]["target_from"] == "audit log"


def test_refusals_write_nothing(fake: FakeRegistry, settings: Settings) -> None:
    with pytest.raises(ConflictError, match="has no champion"):
        promotion.restore(None, "t", "", settings)
    promotion.assign_alias_after_gate("1", "champion", "first", settings=settings)
    _promote(fake, "2", settings)
    fake.writes.clear()
    n = len(read_audit(settings))
    cases: list[tuple[str | None, type[Exception], str]] = [
        ("3", ConflictError, "was never champion per the audit log"),
        ("2", ConflictError, "is the champion already"),
        ("x1", InvalidInputError, "must be a version number"),
    ]
    for to, error, message in cases:
        with pytest.raises(error, match=message):
            promotion.restore(to, "t", "", settings)
    del fake.versions["1"]  # the former champion was deleted from the registry
    with pytest.raises(NotFoundError, match="no version 1"):
        promotion.restore(None, "t", "", settings)
    assert fake.writes == []
    assert len(read_audit(settings)) == n


def test_former_champions_come_from_every_recorded_state() -> None:
    records = [
        {"model": "m", "action": "register_champion", "from_version": None, "to_version": "1"},
        {"model": "m", "action": "rollback", "from_version": "5", "to_version": "1"},
        {"model": "m", "action": "external_change", "before": {"champion": "1"}, "after": {}},
        {"model": "m", "action": "set_weight", "after": {"champion": "2"}},
        {"model": "other", "action": "promote", "from_version": "7", "to_version": "8"},
    ]
    assert promotion.former_champions("m", records) == {"1", "2"}  # 5 was a challenger


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        ({}, (0.5, "default")),
        ({THRESHOLD_TAG: "0.2"}, (0.2, "version")),
        ({THRESHOLD_TAG: "1.0000001"}, (1.0000001, "version")),  # "predict nothing late"
    ],
)
def test_a_versions_threshold_comes_from_its_tag_or_the_default(
    tags: dict[str, str], expected: tuple[float, str]
) -> None:
    assert decision_threshold(VersionInfo("m", "3", None, "", tags)) == expected


@pytest.mark.parametrize("raw", ["nan", "-0.1", "1.5", "half", ""])
def test_a_threshold_tag_that_is_no_probability_is_refused(raw: str) -> None:
    info = VersionInfo("m", "3", None, "", {THRESHOLD_TAG: raw})
    with pytest.raises(InvalidInputError, match=f"version 3 has tag {THRESHOLD_TAG}"):
        decision_threshold(info)
