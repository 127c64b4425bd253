"""The hash-chained audit log on real files: ``driftloop audit verify`` passes on an intact log
and names the first broken record for an edited record, a deleted line, a reordered pair, a
malformed line, a legacy line inside the chain; appends from several processes at once keep the
chain intact; registry changes made by ``_apply`` record the state after them."""

from __future__ import annotations

import json
import multiprocessing
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from driftloop.cli import main
from driftloop.registry import audit, promotion
from driftloop.registry.client import RegistrySnapshot
from driftloop.settings import Settings


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


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


def _verify_cli(capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """``driftloop audit verify`` in this process: (exit code, stdout + stderr)."""
    try:
        main(["audit", "verify"])
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
    assert _verify_cli(capsys) == (0, "5 records, chain intact\n")


def test_verify_of_a_missing_log_is_an_empty_intact_chain(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _verify_cli(capsys) == (0, "0 records, chain intact\n")


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
    assert result.summary() == "2 records, chain intact (after 2 legacy records without hash)"
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


class _Registry:
    """Just enough of the registry for ``_apply``: one snapshot, writes that change it."""

    def __init__(self) -> None:
        self.state = RegistrySnapshot("m", "1", "2", 0, None)
        self.fail_snapshot = False

    def snapshot(self, settings: Settings, name: str | None = None) -> RegistrySnapshot:
        if self.fail_snapshot:
            raise ConnectionError("MLflow went away")
        return self.state


def test_apply_records_the_registry_state_after_the_writes(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    reg = _Registry()
    monkeypatch.setattr(promotion, "registry_snapshot", reg.snapshot)

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


def test_detect_external_records_a_change_once(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    reg = _Registry()
    monkeypatch.setattr(promotion, "registry_snapshot", reg.snapshot)
    monkeypatch.setattr(audit, "registry_snapshot", reg.snapshot)
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
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While a driftloop change holds the log's lock (its writes made, its record not yet
    written), a differing snapshot is not judged: the next call will."""
    reg = _Registry()
    monkeypatch.setattr(audit, "registry_snapshot", reg.snapshot)
    audit.append({**_record(0), "after": audit.registry_state(reg.state)}, settings)
    changed = RegistrySnapshot("m", "2", None, 0, None)
    seen: list[dict[str, Any] | None] = []

    def write() -> None:
        reg.state = changed
        # another process's reconciler (the lock is per open file, so a thread stands in)
        t = threading.Thread(target=lambda: seen.append(audit.detect_external(changed, settings)))
        t.start()
        t.join()

    monkeypatch.setattr(promotion, "registry_snapshot", reg.snapshot)
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
