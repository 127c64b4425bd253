"""The audit log of registry changes: ``{state}/audit/promotions.jsonl``, one JSON record a line,
hash-chained and fsynced.

Every record carries ``prev`` (the link to the line before it: that record's ``hash``; for the
first record :data:`GENESIS`) and its own ``hash``: the SHA-256 of its canonical JSON (sorted
keys, no spaces, ``hash`` left out). Editing, deleting or reordering a line breaks the chain at
that line (:func:`verify`). Lines written before the chain existed (no ``hash``) are accepted as
a prefix only; the first chained record links to the last of them (the SHA-256 of its canonical
JSON), so the last legacy line is covered too.

Appends (:func:`append`) come from several processes at once (flows, serving replicas, the CLI):
each takes an exclusive ``flock`` on the file, reads the last line's hash from the end of the
file, writes one line, flushes and ``fsync``s the file (and its folder when the file was just
created) before returning. :func:`holding` keeps the lock across a whole registry change (the
writes, the snapshot of the state after them, the record), so a reader that takes the lock
(:func:`detect_external`) never sees a change that is made but not yet recorded.

The chain proves order, not completeness: whoever can write the file can drop its last records
or recompute the whole chain. So after each driftloop registry change (``promotion._apply``,
under this lock) the chain head is kept outside the file, as the registered model's tag
:data:`HEAD_TAG` = ``"<line number>:<hash>"`` of the record just written (:class:`Anchor`).
:func:`verify` given that anchor fails when the line is gone (truncated), has no hash (hashes
stripped) or carries another hash (chain rewritten); records appended without a registry write
(``external_change``, serving's ``artifact_refused``) come after the anchored head and are
reported as not anchored. Without an anchor (registry unreachable, no tag yet) only the file is
checked, and the result says so.

Registry changes made directly in MLflow are found by :func:`detect_external`: the serving
reconciler hands it each registry snapshot it reads; when the snapshot differs from the state
the log last recorded for the model (the latest record's ``after``), one ``external_change``
record is appended (actor ``external``), once, however many replicas see the change.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import re
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from driftloop.registry.client import RegistrySnapshot, registry_snapshot
from driftloop.settings import Settings, get_settings

logger = logging.getLogger(__name__)

#: ``prev`` of the first record of a log
GENESIS = "0" * 64
#: what the tail reader reads at a time, from the end of the file backwards
_BLOCK = 64 * 1024
#: how far back detect_external looks for a model's latest record (a model without a record
#: in the last 4 MiB of the log has no known state: nothing to compare with)
_SCAN_BYTES = 4 * 1024 * 1024
#: the fields of the registry state recorded in ``after`` (and compared by detect_external)
STATE_FIELDS = ("champion", "challenger", "weight", "mode")
#: the registered-model tag that anchors the chain head: ``"<line number>:<hash>"``
HEAD_TAG = "driftloop.audit_head"

_local = threading.local()


def audit_path(settings: Settings | None = None) -> Path:
    settings = settings or get_settings()
    return settings.state / "audit" / "promotions.jsonl"


def registry_state(snap: RegistrySnapshot) -> dict[str, Any]:
    """The part of a snapshot the audit log records: champion, challenger, weight, mode."""
    return {name: getattr(snap, name) for name in STATE_FIELDS}


# ---- hashing ----------------------------------------------------------------------------------
def _canonical(record: dict[str, Any]) -> bytes:
    body = {k: v for k, v in record.items() if k != "hash"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def record_hash(record: dict[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON of ``record`` without its ``hash`` field."""
    return hashlib.sha256(_canonical(record)).hexdigest()


def _link(line: bytes) -> str:
    """What the next record's ``prev`` must be after ``line``: its ``hash`` when it has one, the
    hash of its canonical JSON when it is a legacy record, of its bytes when unreadable."""
    try:
        record = json.loads(line)
    except ValueError:
        return hashlib.sha256(line.strip()).hexdigest()
    if not isinstance(record, dict):
        return hashlib.sha256(line.strip()).hexdigest()
    stored = record.get("hash")
    return stored if isinstance(stored, str) else record_hash(record)


# ---- reading from the end ---------------------------------------------------------------------
def _lines_backward(f: IO[bytes], max_bytes: int | None = None) -> Iterator[bytes]:
    """The non-empty lines of ``f``, last first, reading blocks from the end (the common case,
    the last line, costs one read); at most ``max_bytes`` from the end when given."""
    f.seek(0, os.SEEK_END)
    pos = f.tell()
    stop = 0 if max_bytes is None else max(0, pos - max_bytes)
    rest = b""
    while pos > stop:
        size = min(_BLOCK, pos - stop)
        pos -= size
        f.seek(pos)
        chunk = f.read(size) + rest
        lines = chunk.split(b"\n")
        rest = lines.pop(0)  # may continue in the block before
        for line in reversed(lines):
            if line.strip():
                yield line
    if rest.strip() and stop == 0:  # else it may be the end of a longer line
        yield rest


def _last_line(f: IO[bytes]) -> bytes | None:
    return next(_lines_backward(f), None)


def _recorded_state(f: IO[bytes], model: str) -> tuple[dict[str, Any] | None, bool]:
    """``(state, found)``: the registry state the log last recorded for ``model`` (the latest
    record of the model with an ``after``; found=False when the log holds no record of it).
    The latest record of the model without a usable ``after`` (a legacy line, a failed
    snapshot) gives ``(None, True)``: the state is unknown."""
    for line in _lines_backward(f, _SCAN_BYTES):
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if not isinstance(record, dict) or record.get("model") != model:
            continue
        after = record.get("after")
        return (after if isinstance(after, dict) else None), True
    return None, False


# ---- appending --------------------------------------------------------------------------------
def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class AuditLog:
    """The log file, opened and exclusively locked (see :func:`holding`)."""

    def __init__(self, path: Path, f: IO[bytes]) -> None:
        self.path = path
        self.f = f

    def append(self, record: dict[str, Any]) -> dict[str, Any]:
        """Chain ``record`` to the last line, write it, fsync; returns it as written."""
        # as JSON will read it back (datetimes and other objects as text)
        record = json.loads(json.dumps(record, default=str))
        record.pop("hash", None)
        last = _last_line(self.f)
        if last is not None:
            self.f.seek(0, os.SEEK_END)
            self.f.seek(self.f.tell() - 1)
            if self.f.read(1) != b"\n":  # a torn last line (crash mid-write): end it first
                self._write(b"\n")
        record["prev"] = GENESIS if last is None else _link(last)
        record["hash"] = record_hash(record)
        self._write(json.dumps(record, ensure_ascii=False).encode() + b"\n")
        self.f.flush()
        os.fsync(self.f.fileno())
        logger.info("audit: %s %s by %s", record.get("action"), record.get("model"), record["hash"])
        return record

    def _write(self, data: bytes) -> None:
        self.f.seek(0, os.SEEK_END)
        self.f.write(data)

    def recorded_state(self, model: str) -> tuple[dict[str, Any] | None, bool]:
        return _recorded_state(self.f, model)

    def line_count(self) -> int:
        """Lines in the file (each append ends its line): the last record's line number."""
        self.f.seek(0)
        count = 0
        while chunk := self.f.read(_BLOCK):
            count += chunk.count(b"\n")
        return count


@contextlib.contextmanager
def holding(settings: Settings, blocking: bool = True) -> Iterator[AuditLog | None]:
    """Open the log (created when absent) and hold its exclusive lock for the block. Nested use
    in one thread shares the outer lock. ``blocking=False`` yields None when another holds it."""
    path = audit_path(settings)
    held: dict[Path, AuditLog] = _local.__dict__.setdefault("held", {})
    if path in held:
        yield held[path]
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    created = not path.exists()
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)  # an existing file keeps its mode
    with os.fdopen(fd, "r+b", buffering=0) as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                yield None
                return
            raise
        if created:
            _fsync_dir(path.parent)
        log = AuditLog(path, f)
        held[path] = log
        try:
            yield log
        finally:
            del held[path]
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def append(record: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """Append ``record`` (chained, fsynced) under the log's lock; returns it as written."""
    with holding(settings) as log:
        assert log is not None
        return log.append(record)


def now() -> str:
    return datetime.now(UTC).isoformat()


# ---- reading and verifying --------------------------------------------------------------------
def read_records(settings: Settings | None = None) -> list[dict[str, Any]]:
    """All records, oldest first (an unreadable line is skipped with a warning; :func:`verify`
    reports it)."""
    path = audit_path(settings)
    if not path.exists():
        return []
    out = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            logger.warning("skipping malformed audit line %d of %s", n, path)
            continue
        if isinstance(record, dict):
            out.append(record)
    return out


@dataclass(frozen=True)
class Anchor:
    """The chain head kept in the registry (tag :data:`HEAD_TAG`): line ``line`` of the log is
    a hash-chained record whose hash is ``hash``."""

    line: int
    hash: str

    def __str__(self) -> str:
        return f"{self.line}:{self.hash}"

    @classmethod
    def parse(cls, raw: str) -> Anchor:
        if not re.fullmatch(r"[1-9][0-9]{0,17}:[0-9a-f]{64}", raw):
            raise ValueError(f"{raw[:100]!r} is not <line number>:<sha256 hex>")
        line, _, digest = raw.partition(":")
        return cls(int(line), digest)


def read_anchor(settings: Settings) -> tuple[str | None, str]:
    """``(value, "")`` of the registered model's :data:`HEAD_TAG`, or ``(None, why not)`` when
    the registry cannot be read or the model has no anchor."""
    name = settings.mlflow.registered_model
    try:
        tags = registry_snapshot(settings).tags
    except Exception as exc:
        first = (str(exc).splitlines() or [""])[0][:200]
        return None, f"registry unreachable ({type(exc).__name__}: {first})"
    raw = tags.get(HEAD_TAG)
    if raw is None:
        return None, f"model {name} has no {HEAD_TAG} tag (no driftloop registry change anchored)"
    return raw, ""


@dataclass(frozen=True)
class Verification:
    """What :func:`verify` found: ``records`` chained records checked (``legacy`` more without a
    hash before them); ``line``/``problem`` name the first problem (None when intact);
    ``anchor`` the registry's head the log was checked against (None: the file alone, because
    of ``unanchored``); ``after_anchor`` records after the anchored head."""

    path: Path
    records: int
    legacy: int = 0
    line: int | None = None
    problem: str | None = None
    anchor: Anchor | None = None
    unanchored: str = "no anchor given"
    after_anchor: int = 0

    @property
    def intact(self) -> bool:
        return self.problem is None

    @property
    def anchored(self) -> bool:
        return self.anchor is not None

    def summary(self) -> str:
        if not self.intact:
            where = f"line {self.line}: " if self.line else ""
            return f"{self.path}: {where}{self.problem}"
        legacy = f" (after {self.legacy} legacy records without hash)" if self.legacy else ""
        text = f"{self.records} records, chain intact{legacy}"
        if self.anchor is None:
            return (
                f"{text}; not anchored: {self.unanchored} (the file alone was checked: deleting "
                "its last records or rewriting the whole chain would go unseen)"
            )
        text += f"; anchored: record {self.anchor.line} matches the registry's {HEAD_TAG}"
        if self.after_anchor:
            text += f"; {self.after_anchor} records after the anchored head (not anchored)"
        return text


def verify(
    settings: Settings | None = None,
    anchor: str | None = None,
    unanchored: str = "no anchor given",
) -> Verification:
    """Walk the chain from the first line; the first problem is reported with its line number:
    a malformed or empty line, a record whose content does not match its hash (edited), a
    record whose ``prev`` is not the line before it (a line deleted, inserted or reordered), a
    record without hash after the chain began, legacy lines (no hash) with no chain after them.

    ``anchor`` (the registry's :data:`HEAD_TAG` value, see :func:`read_anchor`): its line must
    exist (else the log was truncated), carry a hash (else hashes were stripped) and the
    anchored one (else the chain was rewritten); a malformed anchor fails too. Without it the
    file alone is checked and ``unanchored`` says why. A missing log is an empty chain."""
    path = audit_path(settings)
    head = None
    if anchor is not None:
        try:
            head = Anchor.parse(anchor)
        except ValueError as exc:
            return Verification(path, 0, problem=f"the registry's {HEAD_TAG} is malformed: {exc}")
    expected, records, legacy, n = GENESIS, 0, 0, 0

    def broken(line: int | None, problem: str) -> Verification:
        return Verification(path, records, legacy, line, problem, head, unanchored)

    with contextlib.ExitStack() as stack:
        lines: Iterable[bytes] = stack.enter_context(path.open("rb")) if path.exists() else ()
        for n, raw in enumerate(lines, 1):
            line = raw.rstrip(b"\n")
            if not line.strip():
                return broken(n, "empty line")
            try:
                record = json.loads(line)
            except ValueError:
                return broken(n, "malformed record (not JSON)")
            if not isinstance(record, dict):
                return broken(n, "malformed record (not a JSON object)")
            if "hash" not in record:
                if records:
                    return broken(n, "record without hash inside the chain (inserted)")
                if head is not None and n == head.line:
                    return broken(
                        n,
                        f"hashes stripped: the registry's {HEAD_TAG} says record {n} is "
                        "hash-chained, it has no hash",
                    )
                legacy += 1
                expected = record_hash(record)
                continue
            if record_hash(record) != record["hash"]:
                return broken(
                    n, f"record edited: its content does not match its hash ({_brief(record)})"
                )
            if record.get("prev") != expected:
                return broken(
                    n,
                    "chain broken: prev does not match the record before it (a record was "
                    f"deleted, inserted or reordered before this one: {_brief(record)})",
                )
            if head is not None and n == head.line and record["hash"] != head.hash:
                return broken(
                    n,
                    f"chain rewritten: hash {record['hash'][:16]} is not the registry's "
                    f"anchored head {head.hash[:16]} ({HEAD_TAG}; {_brief(record)})",
                )
            expected = record["hash"]
            records += 1
    if head is not None and n < head.line:
        return broken(
            None,
            f"truncated: the registry's {HEAD_TAG} anchors record {head.line} (hash "
            f"{head.hash[:16]}), the log ends at record {n} (records deleted from its end)",
        )
    if legacy and not records:
        return broken(
            1,
            f"{legacy} records without hash and no hash-chained record after them (a log that "
            "was never chained, or one whose hashes were stripped)",
        )
    after = n - head.line if head is not None else 0
    return Verification(path, records, legacy, None, None, head, unanchored, after)


def _brief(record: dict[str, Any]) -> str:
    return f"{record.get('ts', '?')} {record.get('action', '?')} of {record.get('model', '?')}"


# ---- changes made outside driftloop -----------------------------------------------------------
def _external_record(model: str, before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    moved = "champion" if before.get("champion") != after.get("champion") else "challenger"
    changed = [
        f"{k} {before.get(k)} -> {after.get(k)}"
        for k in STATE_FIELDS
        if before.get(k) != after.get(k)
    ]
    return {
        "ts": now(),
        "action": "external_change",
        "actor": "external",
        "model": model,
        "from_version": before.get(moved),
        "to_version": after.get(moved),
        "weight_before": before.get("weight"),
        "weight_after": after.get("weight"),
        "reason": "registry changed outside driftloop: " + ", ".join(changed),
        "metrics": {},
        "error": None,
        "before": before,
        "after": after,
    }


def _recorded_unlocked(path: Path, model: str) -> tuple[dict[str, Any] | None, bool]:
    try:
        with path.open("rb") as f:
            return _recorded_state(f, model)
    except FileNotFoundError:
        return None, False


def detect_external(snapshot: RegistrySnapshot, settings: Settings) -> dict[str, Any] | None:
    """Audit a registry change made outside driftloop: when ``snapshot`` differs from the state
    the log last recorded for its model, append one ``external_change`` record (returned).

    None when nothing changed, when the log holds no known state of the model (no log, no
    record of the model, or its latest record has no ``after``: nothing to compare with), or
    when a driftloop change is being made right now (the lock is held: the next call looks
    again). Cheap when nothing changed: the tail of the file is read without the lock. On a
    difference, the lock is taken, the tail re-read (another replica may have recorded it) and
    the registry read once more (the snapshot may predate a change recorded since); only a
    difference that still holds is written. Never raises: a failure is logged."""
    try:
        return _detect(snapshot, settings)
    except Exception:
        logger.warning("could not check the registry against the audit log", exc_info=True)
        return None


def _detect(snapshot: RegistrySnapshot, settings: Settings) -> dict[str, Any] | None:
    current = registry_state(snapshot)
    recorded, _ = _recorded_unlocked(audit_path(settings), snapshot.name)
    if recorded is None or recorded == current:
        return None
    with holding(settings, blocking=False) as log:
        if log is None:
            return None
        recorded, _ = log.recorded_state(snapshot.name)
        if recorded is None or recorded == current:
            return None
        try:
            fresh = registry_state(registry_snapshot(settings, snapshot.name))
        except Exception:
            logger.warning("registry re-read failed; judging the snapshot given", exc_info=True)
            fresh = current
        if fresh == recorded:
            return None
        record = log.append(_external_record(snapshot.name, recorded, fresh))
    logger.warning("audit: %s", record["reason"])
    return record
