"""The hash-chained audit log on real files: ``driftloop audit verify`` passes on an intact log
and names the first broken record for an edited record, a deleted line, a reordered pair, a
malformed line, a legacy line inside the chain; appends from several processes at once keep the
chain intact; registry changes made by ``_apply`` record the state after them and anchor the
chain head in the registry, so deleting the last records, stripping every hash or recomputing
the chain around an edited record is caught; an unanchored verify says so.

The registry is an in-memory stand-in here (the anchor is one registered-model tag); the same
checks against a real MLflow server are in tests/integration/registry/test_audit_external.py."""

from __future__ import annotations

import json
import multiprocessing
import stat
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from driftloop.cli import main
from driftloop.errors import ServiceUnavailableError
from driftloop.registry import audit, promotion
from driftloop.registry.client import RegistrySnapshot
from driftloop.settings import Settings


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


class _Registry:
    """Just enough of the registry for ``_apply`` and ``verify``: one snapshot, writes that
    change it, the anchor tag (unreachable when ``fail_snapshot``)."""

    def __init__(self) -> None:
        self.state = RegistrySnapshot("m", "1", "2", 0, None)
        self.tags: dict[str, str] = {}
        self.fail_snapshot = False
        self.fail_tag = False

    def snapshot(self, settings: Settings, name: str | None = None) -> RegistrySnapshot:
        if self.fail_snapshot:
            raise ServiceUnavailableError("MLflow is unreachable at http://127.0.0.1:9 (test)")
        return replace(self.state, tags={**self.state.tags, **self.tags})

    def set_tag(self, key: str, value: str, settings: Settings) -> None:
        if self.fail_tag:
            raise ConnectionError("MLflow went away")
        self.tags[key] = value


@pytest.fixture(autouse=True)
def registry(monkeypatch: pytest.MonkeyPatch) -> _Registry:
    """Every test of this module gets the stand-in registry (no MLflow is reached)."""
    reg = _Registry()
    monkeypatch.setattr(promotion, "registry_snapshot", reg.snapshot)
    monkeypatch.setattr(promotion, "_set_model_tag", reg.set_tag)
    monkeypatch.setattr(audit, "registry_snapshot", reg.snapshot)
    # version descriptions: tests/integration/registry/test_version_description.py
    monkeypatch.setattr(promotion, "describe_change", lambda record, settings: {})
    return reg


def _record(i: int, model: str = "m") -> dict[str, Any]:
    return {
        "ts": f"2026-01-01T00:00:{i:02d}+00:00",
        "action": "set_weight",
        "actor": f"test-{i}",
        "model": model,
        "from_version": "1",
        "to_version": "2",
        "weight_before": i,
        "weight_after": i + 1,
        "reason": "test",
        "metrics": {"auc": 0.5 + i / 100},
        "error": None,
    }


def _write_log(settings: Settings, n: int) -> Path:
    for i in range(n):
        audit.append(_record(i), settings)
    return audit.audit_path(settings)


#: what verify adds when the registry holds no anchor (logs written by ``audit.append`` alone)
NO_TAG = (
    "; not anchored: model flight-delay has no driftloop.audit_head tag (no driftloop "
    "registry change anchored) (the file alone was checked: deleting its last records or "
    "rewriting the whole chain would go unseen)"
)


def _verify_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """``driftloop audit verify [args]`` in this process: (exit code, stdout + stderr)."""
    try:
        main(["audit", "verify", *args])
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out + out.err


def test_verify_passes_on_an_intact_log(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write_log(settings, 5)
    records = audit.read_records(settings)
    assert records[0]["prev"] == audit.GENESIS
    assert [r["prev"] for r in records[1:]] == [r["hash"] for r in records[:-1]]
    assert path.read_text().count("\n") == 5
    assert _verify_cli(capsys) == (0, f"5 records, chain intact{NO_TAG}\n")


def test_verify_of_a_missing_log_is_an_empty_intact_chain(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _verify_cli(capsys) == (0, f"0 records, chain intact{NO_TAG}\n")


def test_verify_fails_on_an_edited_record(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write_log(settings, 5)
    lines = path.read_text().splitlines()
    edited = json.loads(lines[2])
    edited["to_version"] = "666"  # somebody rewrites what was promoted
    lines[2] = json.dumps(edited)
    path.write_text("\n".join(lines) + "\n")
    code, out = _verify_cli(capsys)
    assert code == 1
    assert out.count("\n") == 1  # one readable line
    assert "line 3: record edited" in out
    assert "set_weight of m" in out


def test_verify_fails_on_an_edit_that_also_recomputes_the_hash(settings: Settings) -> None:
    path = _write_log(settings, 4)
    lines = path.read_text().splitlines()
    edited = json.loads(lines[1])
    edited["actor"] = "nobody"
    edited["hash"] = audit.record_hash(edited)
    lines[1] = json.dumps(edited)
    path.write_text("\n".join(lines) + "\n")
    result = audit.verify(settings)
    assert (result.intact, result.line) == (False, 3)  # the next record no longer links to it
    assert "chain broken" in (result.problem or "")


def test_verify_fails_on_a_deleted_line(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write_log(settings, 5)
    lines = path.read_text().splitlines()
    del lines[1]
    path.write_text("\n".join(lines) + "\n")
    code, out = _verify_cli(capsys)
    assert code == 1
    assert "line 2: chain broken" in out
    assert "deleted" in out


def test_verify_fails_on_a_deleted_first_line(settings: Settings) -> None:
    path = _write_log(settings, 3)
    path.write_text("\n".join(path.read_text().splitlines()[1:]) + "\n")
    result = audit.verify(settings)
    assert (result.intact, result.line, result.records) == (False, 1, 0)


def test_verify_fails_on_a_reordered_pair(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write_log(settings, 5)
    lines = path.read_text().splitlines()
    lines[2], lines[3] = lines[3], lines[2]
    path.write_text("\n".join(lines) + "\n")
    code, out = _verify_cli(capsys)
    assert code == 1
    assert "line 3: chain broken" in out


def test_verify_fails_on_a_malformed_line(settings: Settings) -> None:
    path = _write_log(settings, 3)
    lines = path.read_text().splitlines()
    lines[1] = lines[1][:40]  # truncated
    path.write_text("\n".join(lines) + "\n")
    result = audit.verify(settings)
    assert (result.line, result.problem) == (2, "malformed record (not JSON)")
    assert result.summary().endswith("line 2: malformed record (not JSON)")


def test_legacy_lines_are_accepted_only_as_a_prefix(settings: Settings) -> None:
    path = audit.audit_path(settings)
    path.parent.mkdir(parents=True)
    legacy = [
        json.dumps({"ts": f"2025-01-0{i}", "action": "promote", "model": "m"}) for i in (1, 2)
    ]
    path.write_text("\n".join(legacy) + "\n")
    audit.append(_record(1), settings)
    audit.append(_record(2), settings)
    result = audit.verify(settings)
    assert (result.intact, result.records, result.legacy) == (True, 2, 2)
    assert result.summary().startswith(
        "2 records, chain intact (after 2 legacy records without hash); not anchored"
    )
    # the first chained record links to the last legacy line: editing that one is caught too
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], lines[1].replace("promote", "rollback"), *lines[2:]]))
    assert audit.verify(settings).line == 3
    # a record without hash after the chain began is an insertion
    path.write_text("\n".join([*lines[:3], legacy[0], lines[3]]) + "\n")
    result = audit.verify(settings)
    assert (result.line, result.problem) == (4, "record without hash inside the chain (inserted)")


def test_audit_list_shows_the_records(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    _write_log(settings, 3)
    main(["audit", "list", "--limit", "2"])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3  # header and the last two
    assert "test-2" in lines[-1]
    assert "1->2" in lines[-1]
    main(["audit", "list", "--json"])
    assert [json.loads(x)["actor"] for x in capsys.readouterr().out.splitlines()] == [
        "test-0",
        "test-1",
        "test-2",
    ]


def _append_many(state_dir: str, worker: int, n: int) -> None:
    settings = Settings(state_dir=Path(state_dir))
    for i in range(n):
        audit.append({**_record(i), "actor": f"proc-{worker}"}, settings)


def test_concurrent_appends_from_several_processes_keep_the_chain(settings: Settings) -> None:
    ctx = multiprocessing.get_context("spawn")
    workers, each = 4, 30
    procs = [
        ctx.Process(target=_append_many, args=(str(settings.state), w, each))
        for w in range(workers)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(120)
    assert [proc.exitcode for proc in procs] == [0] * workers
    result = audit.verify(settings)
    assert (result.intact, result.records) == (True, workers * each), result.summary()
    actors = [r["actor"] for r in audit.read_records(settings)]
    assert sorted(set(actors)) == [f"proc-{w}" for w in range(workers)]
    assert all(actors.count(f"proc-{w}") == each for w in range(workers))


def test_an_append_after_a_torn_last_line_starts_a_new_line(settings: Settings) -> None:
    path = _write_log(settings, 2)
    with path.open("a") as f:
        f.write('{"ts": "2026-01-01", "act')  # a crash in the middle of a write
    audit.append(_record(3), settings)
    assert len(path.read_text().splitlines()) == 4
    result = audit.verify(settings)
    assert (result.line, result.problem) == (3, "malformed record (not JSON)")


def test_apply_records_the_registry_state_after_the_writes(
    settings: Settings, registry: _Registry
) -> None:
    reg = registry

    def write() -> None:
        reg.state = RegistrySnapshot("m", "2", None, 0, "shadow")

    change = promotion.RegistryChange("promote", "t", "m", "1", "2", 10, 0, "why")
    record = promotion._apply(change, [write], settings)
    assert record["after"] == {"champion": "2", "challenger": None, "weight": 0, "mode": "shadow"}
    assert promotion.read_audit(settings) == [record]
    assert audit.verify(settings).intact

    reg.fail_snapshot = True  # the state cannot be read: the record says so with null
    record = promotion._apply(change, [lambda: None], settings)
    assert record["after"] is None
    assert promotion.audit_path(settings) == audit.audit_path(settings)
    assert audit.verify(settings).records == 2


def test_detect_external_records_a_change_once(settings: Settings, registry: _Registry) -> None:
    reg = registry
    assert audit.detect_external(reg.state, settings) is None  # no log: nothing to compare
    promotion._apply(
        promotion.RegistryChange("set_weight", "t", "m", "1", "2", 0, 0, ""), [], settings
    )
    assert audit.detect_external(reg.state, settings) is None  # as recorded

    reg.state = RegistrySnapshot("m", "3", "2", 0, None)  # somebody set champion in MLflow
    record = audit.detect_external(reg.state, settings)
    assert record is not None
    assert (record["action"], record["actor"]) == ("external_change", "external")
    assert (record["from_version"], record["to_version"]) == ("1", "3")
    assert record["before"]["champion"] == "1"
    assert record["after"] == audit.registry_state(reg.state)
    assert "champion 1 -> 3" in record["reason"]
    # every other replica seeing the same change writes nothing
    assert audit.detect_external(reg.state, settings) is None
    assert [r["action"] for r in audit.read_records(settings)] == ["set_weight", "external_change"]
    # a stale snapshot (read before a change that is recorded by now) is not external
    stale = RegistrySnapshot("m", "1", "2", 0, None)
    assert audit.detect_external(stale, settings) is None
    # another model's records are not this model's state
    assert audit.detect_external(RegistrySnapshot("other", "9", None, 0, None), settings) is None
    assert audit.verify(settings).records == 2


def test_detect_external_waits_for_a_change_in_progress(
    settings: Settings, registry: _Registry
) -> None:
    """While a driftloop change holds the log's lock (its writes made, its record not yet
    written), a differing snapshot is not judged: the next call will."""
    reg = registry
    audit.append({**_record(0), "after": audit.registry_state(reg.state)}, settings)
    changed = RegistrySnapshot("m", "2", None, 0, None)
    seen: list[dict[str, Any] | None] = []

    def write() -> None:
        reg.state = changed
        # another process's reconciler (the lock is per open file, so a thread stands in)
        t = threading.Thread(target=lambda: seen.append(audit.detect_external(changed, settings)))
        t.start()
        t.join()

    promotion._apply(
        promotion.RegistryChange("promote", "t", "m", "1", "2", 0, 0, ""), [write], settings
    )
    assert seen == [None]
    assert audit.detect_external(changed, settings) is None  # recorded by the promote
    assert [r["action"] for r in audit.read_records(settings)] == ["set_weight", "promote"]


def test_detect_external_never_raises(settings: Settings) -> None:
    path = audit.audit_path(settings)
    path.mkdir(parents=True)  # not even a file
    assert audit.detect_external(RegistrySnapshot("m", "1", None, 0, None), settings) is None


def test_the_tail_reader_returns_the_lines_last_first_across_blocks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(audit, "_BLOCK", 7)  # lines longer and shorter than a block
    lines = [b"a" * n for n in (1, 20, 3, 7, 8, 0, 15)]
    path = tmp_path / "log"
    path.write_bytes(b"\n".join(lines) + b"\n")
    with path.open("rb") as f:
        assert list(audit._lines_backward(f)) == [x for x in reversed(lines) if x]
        # bounded: only whole lines that start within the last 30 bytes
        assert list(audit._lines_backward(f, 30)) == [b"a" * 15, b"a" * 8]


# ---- the chain head anchored in the registry --------------------------------------------------
def _changes(settings: Settings, n: int) -> list[dict[str, Any]]:
    """``n`` driftloop registry changes (``_apply``: record, then anchor), as returned."""
    return [
        promotion._apply(
            promotion.RegistryChange("set_weight", f"actor-{i}", "m", "1", "2", i, i + 1, "t"),
            [],
            settings,
        )
        for i in range(n)
    ]


def _rechain(lines: list[str]) -> list[str]:
    """What somebody who can write the file does after editing it: recompute every link."""
    out, prev = [], audit.GENESIS
    for line in lines:
        record = json.loads(line)
        record["prev"] = prev
        record["hash"] = prev = audit.record_hash(record)
        out.append(json.dumps(record))
    return out


def test_each_change_anchors_the_chain_head_in_the_registry(
    settings: Settings, registry: _Registry
) -> None:
    records = _changes(settings, 3)
    assert registry.tags == {audit.HEAD_TAG: f"3:{records[-1]['hash']}"}
    assert "anchor_error" not in records[-1]
    assert promotion.read_audit(settings) == records


def test_an_intact_anchored_log_passes_and_names_the_records_after_its_head(
    settings: Settings, registry: _Registry, capsys: pytest.CaptureFixture[str]
) -> None:
    _changes(settings, 2)
    assert _verify_cli(capsys, "--require-anchor") == (
        0,
        "2 records, chain intact; anchored: record 2 matches the registry's driftloop.audit_head\n",
    )
    # records written without a registry write (external_change, artifact_refused) follow it
    audit.append(_record(7), settings)
    code, out = _verify_cli(capsys)
    assert (code, out.count("\n")) == (0, 1)
    assert out.endswith("; 1 records after the anchored head (not anchored)\n")


def test_deleting_the_last_record_is_caught_by_the_anchor(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    _changes(settings, 3)
    path = audit.audit_path(settings)
    path.write_text("\n".join(path.read_text().splitlines()[:-1]) + "\n")
    assert audit.verify(settings).intact  # the file alone cannot tell
    code, out = _verify_cli(capsys)
    assert code == 1
    assert out.count("\n") == 1
    assert "truncated: the registry's driftloop.audit_head anchors record 3" in out
    assert "the log ends at record 2" in out
    path.write_text("")  # every record deleted
    assert "ends at record 0" in _verify_cli(capsys)[1]
    path.unlink()  # the log deleted
    assert _verify_cli(capsys)[0] == 1


def test_stripping_every_hash_is_caught(
    settings: Settings, registry: _Registry, capsys: pytest.CaptureFixture[str]
) -> None:
    _changes(settings, 3)
    path = audit.audit_path(settings)
    stripped = []
    for line in path.read_text().splitlines():
        record = json.loads(line)
        del record["hash"], record["prev"]
        record["actor"] = "somebody-else"
        stripped.append(json.dumps(record))
    path.write_text("\n".join(stripped) + "\n")
    code, out = _verify_cli(capsys)
    assert code == 1
    assert "line 3: hashes stripped" in out
    # without the anchor, a log of legacy lines alone is not accepted either
    registry.fail_snapshot = True
    code, out = _verify_cli(capsys)
    assert code == 1
    assert "line 1: 3 records without hash and no hash-chained record after them" in out


def test_a_recomputed_chain_with_an_edited_middle_record_is_caught(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    records = _changes(settings, 4)
    path = audit.audit_path(settings)
    lines = path.read_text().splitlines()
    lines[1] = lines[1].replace('"actor-1"', '"nobody"')
    path.write_text("\n".join(_rechain(lines)) + "\n")
    assert audit.verify(settings).intact  # a consistent chain: the file alone cannot tell
    code, out = _verify_cli(capsys)
    assert code == 1
    assert "line 4: chain rewritten" in out
    assert records[-1]["hash"][:16] in out


def test_unanchored_verify_says_so_and_fails_when_the_anchor_is_required(
    settings: Settings, registry: _Registry, capsys: pytest.CaptureFixture[str]
) -> None:
    _changes(settings, 2)
    registry.fail_snapshot = True  # MLflow down: the file alone is checked, and it says so
    code, out = _verify_cli(capsys)
    assert code == 0
    assert out.startswith(
        "2 records, chain intact; not anchored: registry unreachable (ServiceUnavailableError: "
        "MLflow is unreachable at http://127.0.0.1:9 (test))"
    )
    code, out = _verify_cli(capsys, "--require-anchor")
    assert code == 1
    assert out.startswith("audit log not verified (--require-anchor): 2 records, chain intact;")
    registry.fail_snapshot = False
    registry.tags.clear()  # no anchor yet
    code, out = _verify_cli(capsys, "--require-anchor")
    assert code == 1
    assert "has no driftloop.audit_head tag" in out
    # an unanchored verify still fails on what the file shows
    path = audit.audit_path(settings)
    path.write_text(path.read_text().replace('"actor-0"', '"nobody"'))
    assert _verify_cli(capsys)[0] == 1


def test_a_malformed_anchor_fails_verify(
    settings: Settings, registry: _Registry, capsys: pytest.CaptureFixture[str]
) -> None:
    _changes(settings, 1)
    registry.tags[audit.HEAD_TAG] = "1:not-a-hash"
    code, out = _verify_cli(capsys)
    assert code == 1
    assert "the registry's driftloop.audit_head is malformed" in out


def test_a_failed_anchor_write_is_reported_and_the_change_stands(
    settings: Settings, registry: _Registry
) -> None:
    (first,) = _changes(settings, 1)
    registry.fail_tag = True
    (record,) = _changes(settings, 1)
    assert record["anchor_error"].startswith(
        f"could not anchor the audit head 2:{record['hash']}: ConnectionError: MLflow went away"
    )
    written = {k: v for k, v in record.items() if k != "anchor_error"}  # not in the log
    assert promotion.read_audit(settings) == [first, written]
    # the stale anchor still holds the chain up to it; the newer record is reported unanchored
    result = audit.verify(settings, *audit.read_anchor(settings))
    assert (result.intact, result.after_anchor) == (True, 1)


def test_the_log_is_created_0600_and_an_existing_mode_is_kept(settings: Settings) -> None:
    path = _write_log(settings, 1)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.chmod(0o640)
    audit.append(_record(2), settings)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
