"""Retention of the data repository's local DVC cache (part of
:mod:`driftloop.loop.housekeeping`).

An object of the local cache (never the remote) is removed when it is older than
``retention.dvc_cache_days`` (file time), when no data commit of the last ``dvc_cache_days``,
no registered version's data revision and not the workspace uses it (DVC's own ``used_objs``,
as ``dvc gc`` computes it), and only when the DVC remote holds it, so every revision stays
readable (``dvc.api.read`` fetches it back). Objects only a registered version's revision uses
are listed as kept, with the version; objects the remote lacks are kept too. Everything runs
under the data repository's lock, so no ingest adds or pushes in between; while an ingest holds
it, the cache is skipped (reported).
"""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from driftloop.data.repo import DataRepo
from driftloop.errors import ConflictError, DriftloopError
from driftloop.settings import Settings

KIND = "dvc_cache"


class Sink(Protocol):
    """Where the sweep puts what it finds (the housekeeping run: its clock, limits, report)."""

    settings: Settings
    cutoff: dict[str, datetime]
    days: dict[str, float]

    def keep(self, kind: str, path: Path, size: int, when: datetime, why: str) -> None: ...

    def remove(self, kind: str, path: Path, size: int, when: datetime, why: str) -> None: ...

    def error(self, message: str) -> None: ...


def recent_commits(repo: DataRepo, cutoff: datetime) -> list[str]:
    """Commits of the data repository committed at or after ``cutoff``."""
    out = repo.git("log", "--all", "--format=%H %ct")
    recent = []
    for line in out.splitlines():
        sha, _, stamp = line.partition(" ")
        if stamp.strip().isdigit() and int(stamp) >= cutoff.timestamp():
            recent.append(sha)
    return recent


def _used(dvc_repo: Any, revs: list[str]) -> set[tuple[str, str]]:
    """(hash name, hash value) of every object the workspace and ``revs`` use."""
    from dvc_data.hashfile.tree import Tree

    used: set[tuple[str, str]] = set()
    for obj_ids in dvc_repo.used_objs(revs=revs or None).values():
        for hash_info in obj_ids:
            if not hash_info.value:
                continue
            used.add((hash_info.name, hash_info.value))
            if hash_info.isdir:  # a directory output: its files are in use too
                try:
                    tree = Tree.load(dvc_repo.cache.repo, hash_info)
                except Exception as exc:  # its files unknown: nothing may go (fail closed)
                    raise DriftloopError(
                        f"cannot list directory output {hash_info.value} ({exc}): no cache "
                        "object removed"
                    ) from None
                for _, entry in tree:
                    used.add((entry.hash_info.name, entry.hash_info.value))
    return used


def sweep_dvc_cache(sink: Sink, data_revs: dict[str, list[str]]) -> None:
    """Sweep the local cache (module doc); ``data_revs``: registered data revision -> the
    versions that hold it. Problems go to ``sink.error``, never raised."""
    repo = DataRepo(sink.settings)
    if not repo.exists:
        return
    cutoff = sink.cutoff[KIND]
    try:
        with repo.locked():
            registered: dict[str, list[str]] = {}
            for rev, holders in data_revs.items():
                try:
                    registered[repo.resolve(rev)] = holders
                except DriftloopError:
                    sink.error(
                        f"data revision {rev} of {', '.join(holders)} is not in {repo.root}: "
                        "nothing of it is in the cache to keep"
                    )
            recent = ["HEAD", *recent_commits(repo, cutoff)]
            with repo.dvc() as dvc_repo:
                _sweep_objects(sink, dvc_repo, recent, registered, cutoff)
    except ConflictError as exc:
        sink.error(f"DVC cache skipped: {exc}")
    except (DriftloopError, subprocess.SubprocessError, OSError) as exc:
        sink.error(f"DVC cache skipped: {exc}")


def _sweep_objects(
    sink: Sink,
    dvc_repo: Any,
    recent: list[str],
    registered: dict[str, list[str]],
    cutoff: datetime,
) -> None:
    in_use = _used(dvc_repo, recent)
    held: dict[tuple[str, str], list[str]] = {}
    for rev, holders in registered.items():
        for key in _used(dvc_repo, [rev]) - in_use:
            held.setdefault(key, []).extend(f"{h} (data revision {rev[:10]})" for h in holders)
    for odb in (dvc_repo.cache.repo, dvc_repo.cache.legacy):
        candidates: dict[str, tuple[Path, int, datetime]] = {}
        for oid in odb.all():
            key = (odb.hash_name, oid)
            if key in in_use:
                continue
            path = Path(odb.oid_to_path(oid))
            try:
                stat = path.stat()
            except OSError:
                continue
            when = datetime.fromtimestamp(stat.st_mtime, UTC)
            if when > cutoff:
                continue
            if key in held:
                sink.keep(KIND, path, stat.st_size, when, "used by " + ", ".join(held[key]))
                continue
            candidates[oid] = (path, stat.st_size, when)
        if not candidates:
            continue
        try:
            remote = dvc_repo.cloud.get_remote_odb(None, "housekeeping", hash_name=odb.hash_name)
            in_remote = set(remote.list_oids_exists(list(candidates)))
        except Exception as exc:  # no remote, or unreachable: nothing may go
            sink.error(
                f"DVC remote unreadable ({type(exc).__name__}: {exc}): no cache object removed"
            )
            return
        for oid, (path, size, when) in sorted(candidates.items()):
            if oid in in_remote:
                sink.remove(
                    KIND,
                    path,
                    size,
                    when,
                    f"used by no registered version, no commit of the last "
                    f"{sink.days[KIND]:g} days nor the workspace; the remote holds it",
                )
            else:
                sink.keep(KIND, path, size, when, "not in the DVC remote (push it first)")
