"""The registry's writer (promotion.py) against an in-memory registry: validation happens before
any write, writes come in a serving-safe order, and each change is one audit record. The real
MLflow path is in tests/integration/registry/."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from driftloop.errors import ConflictError, InvalidInputError, NotFoundError
from driftloop.registry import audit, client, promotion
from driftloop.registry.client import MODE_TAG, ROLLOUT_TAG, WEIGHT_TAG, RegistrySnapshot
from driftloop.registry.promotion import RegistryChange, read_audit
from driftloop.settings import Settings


class FakeRegistry:
    """Aliases and model tags of one registered model; every write is logged in order (the
    audit log's anchor, tag ``driftloop.audit_head``, included)."""

    def __init__(self) -> None:
        self.aliases: dict[str, str] = {}
        self.tags: dict[str, str] = {}
        #: tags per version (every version named here exists)
        self.versions: dict[str, dict[str, str]] = {}
        self.writes: list[tuple[str, ...]] = []
        #: the audited changes whose versions' descriptions were brought up to date
        self.described: list[str] = []

    def snapshot(self, settings: Settings, name: str | None = None) -> RegistrySnapshot:
        return RegistrySnapshot(
            name="m",
            champion=self.aliases.get("champion"),
            challenger=self.aliases.get("challenger"),
            weight=client._parse_weight(self.tags.get(WEIGHT_TAG)),
            mode=self.tags.get(MODE_TAG),
            tags=dict(self.tags),
            rollout_started=client._parse_rollout(
                self.tags.get(ROLLOUT_TAG), self.aliases.get("challenger")
            ),
        )

    def set_alias(self, alias: str, version: str, settings: Settings) -> None:
        self.writes.append(("set_alias", alias, version))
        self.aliases[alias] = version

    def delete_alias(self, alias: str, settings: Settings) -> None:
        self.writes.append(("delete_alias", alias))
        self.aliases.pop(alias, None)

    def set_tag(self, key: str, value: str, settings: Settings) -> None:
        self.writes.append(("set_tag", key, value))
        self.tags[key] = value

    def delete_tag(self, key: str, settings: Settings) -> None:
        self.writes.append(("delete_tag", key))
        self.tags.pop(key, None)

    def set_version_tag(self, version: str, key: str, value: str, settings: Settings) -> None:
        self.writes.append(("set_version_tag", version, key, value))
        self.versions.setdefault(version, {})[key] = value

    def get_version(
        self, version: str, settings: Settings, name: str | None = None
    ) -> client.VersionInfo:
        if version not in self.versions:
            raise NotFoundError(f"model m has no version {version}")
        return client.VersionInfo("m", version, None, "", dict(self.versions[version]))

    def describe_change(self, record: dict[str, Any], settings: Settings) -> dict[str, Any]:
        self.described.append(str(record["action"]))
        return {}


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
    return reg


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


def test_registry_change_record_keeps_the_audit_field_order() -> None:
    change = RegistryChange("promote", "cli", "m", "1", "2", 30, 0, "why", {"auc": 0.7})
    assert list(change.record()) == [
        "action",
        "actor",
        "model",
        "from_version",
        "to_version",
        "weight_before",
        "weight_after",
        "reason",
        "metrics",
        "error",
    ]


def test_a_write_failing_part_way_is_audited_with_the_error_and_raised(
    fake: FakeRegistry, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A promote moves the champion first: if dropping the challenger then fails, the champion
    has moved all the same, so the change must be in the audit log (with what failed)."""
    fake.aliases.update(champion="1", challenger="2")

    def broken(alias: str, settings: Settings) -> None:
        raise ConnectionError("MLflow went away")

    fake.tags[ROLLOUT_TAG] = "2026-01-01T00:00:00+00:00|2"  # its canary was started
    monkeypatch.setattr(promotion, "_delete_alias", broken)
    with pytest.raises(ConnectionError):
        promotion.promote("t", "why", None, settings)
    assert fake.aliases["champion"] == "2"  # the first write happened
    (record,) = read_audit(settings)
    assert record["action"] == "promote"
    assert record["error"] == "write 4 of 5 failed: ConnectionError: MLflow went away"
    assert fake.tags[audit.HEAD_TAG] == f"1:{record['hash']}"  # the failed change is anchored


@pytest.mark.parametrize("weight", [-1, 101])
def test_set_weight_out_of_range_is_400_before_any_write(
    fake: FakeRegistry, settings: Settings, weight: int
) -> None:
    fake.aliases["challenger"] = "2"
    with pytest.raises(InvalidInputError, match=r"0\.\.100"):
        promotion.set_weight(weight, "t", "", settings)
    with pytest.raises(InvalidInputError):
        promotion.start_rollout(weight, "t", settings)
    assert fake.writes == []
    assert read_audit(settings) == []


def test_positive_weight_without_challenger_is_409_and_unaudited(
    fake: FakeRegistry, settings: Settings
) -> None:
    fake.aliases["champion"] = "1"
    with pytest.raises(ConflictError):
        promotion.set_weight(10, "t", "", settings)
    for act in (promotion.promote, promotion.rollback):
        with pytest.raises(ConflictError):
            act("t", "", None, settings)
    assert fake.writes == []
    assert read_audit(settings) == []


def test_bad_mode_and_bad_alias_are_400(fake: FakeRegistry, settings: Settings) -> None:
    with pytest.raises(InvalidInputError):
        promotion.set_mode("blue", "t", "", settings)
    with pytest.raises(InvalidInputError):
        promotion.assign_alias_after_gate("3", "staging", settings=settings)
    assert fake.writes == []


def test_new_challenger_gets_weight_zero_before_its_alias(
    fake: FakeRegistry, settings: Settings
) -> None:
    fake.aliases.update(champion="1", challenger="2")
    fake.tags[WEIGHT_TAG] = "40"
    record = promotion.assign_alias_after_gate("3", "challenger", "gate", {"auc": 1}, settings)
    assert fake.writes == [
        ("set_tag", WEIGHT_TAG, "0"),
        ("set_alias", "challenger", "3"),
        ("set_tag", audit.HEAD_TAG, f"1:{record['hash']}"),  # after the record, its anchor
    ]
    assert record["action"] == "register_challenger"
    assert (record["from_version"], record["to_version"]) == ("2", "3")
    assert (record["weight_before"], record["weight_after"]) == (40, 0)
    assert record["actor"] == "train"
    assert record["metrics"] == {"auc": 1}
    assert read_audit(settings) == [record]


def test_promote_moves_champion_first_then_weight_then_drops_challenger(
    fake: FakeRegistry, settings: Settings
) -> None:
    fake.aliases.update(champion="1", challenger="2")
    fake.tags[WEIGHT_TAG] = "25"
    fake.tags[ROLLOUT_TAG] = "2026-01-01T00:00:00+00:00|2"  # its canary was started
    record = promotion.promote("t", "good", {"auc": 0.7}, settings)
    assert fake.writes == [
        ("set_version_tag", "2", client.REPLACED_TAG, "1"),  # what it replaces, before the alias
        ("set_alias", "champion", "2"),
        ("set_tag", WEIGHT_TAG, "0"),
        ("delete_alias", "challenger"),
        ("delete_tag", ROLLOUT_TAG),  # the rollout ended: no stale stamp stays
        ("set_tag", audit.HEAD_TAG, f"1:{record['hash']}"),
    ]
    assert fake.described == ["promote"]
    assert {k: record[k] for k in ("action", "from_version", "to_version")} == {
        "action": "promote",
        "from_version": "1",
        "to_version": "2",
    }
    assert (record["weight_before"], record["weight_after"]) == (25, 0)
    assert record["replaced_version"] == "1"


def test_mode_change_is_audited_with_both_modes(fake: FakeRegistry, settings: Settings) -> None:
    fake.aliases.update(champion="1", challenger="2")
    fake.tags[WEIGHT_TAG] = "10"
    on = promotion.set_mode("shadow", "t", "mirror", settings)
    off = promotion.set_mode("", "t", "back", settings)
    assert fake.writes == [
        ("set_tag", MODE_TAG, "shadow"),
        ("set_tag", audit.HEAD_TAG, f"1:{on['hash']}"),
        ("delete_tag", MODE_TAG),
        ("set_tag", audit.HEAD_TAG, f"2:{off['hash']}"),
    ]
    assert [r["action"] for r in read_audit(settings)] == ["set_mode", "set_mode"]
    assert on["metrics"] == {"mode_before": None, "mode_after": "shadow"}
    assert off["metrics"] == {"mode_before": "shadow", "mode_after": None}
    assert (on["weight_before"], on["weight_after"]) == (10, 10)


def test_rollout_start_stamps_the_challenger_and_sets_its_weight(
    fake: FakeRegistry, settings: Settings
) -> None:
    fake.aliases.update(champion="1", challenger="2")
    record = promotion.start_rollout(20, "rollout", settings)
    assert fake.tags[ROLLOUT_TAG].endswith("|2")
    assert fake.tags[WEIGHT_TAG] == "20"
    assert record["action"] == "rollout_start"
    assert [r["action"] for r in read_audit(settings)] == ["rollout_start"]


def test_demo_reset_is_a_no_op_when_already_in_place(
    fake: FakeRegistry, settings: Settings
) -> None:
    fake.aliases["champion"] = "4"
    assert promotion.reset_champion("4", settings=settings) is None
    assert fake.writes == []
    assert read_audit(settings) == []


@pytest.mark.parametrize(
    ("raw", "weight"), [(None, 0), ("", 0), ("30", 30), ("250", 100), ("-5", 0), ("x", 0)]
)
def test_weight_tag_is_parsed_once_on_read(raw: str | None, weight: int) -> None:
    assert client._parse_weight(raw) == weight


def test_mlflow_not_found_maps_to_not_found_error_or_a_default() -> None:
    from mlflow.exceptions import MlflowException

    def missing() -> Any:
        raise MlflowException("Registered Model with name=x not found", "RESOURCE_DOES_NOT_EXIST")

    def broken() -> Any:
        raise MlflowException("database is locked", "INTERNAL_ERROR")

    with pytest.raises(NotFoundError, match="no such thing"):
        client._fetch(missing, "no such thing")
    assert client._fetch_or(missing, "default") == "default"
    assert client._fetch_or(lambda: 3, None) == 3
    with pytest.raises(MlflowException, match="locked"):
        client._fetch_or(broken, None)
