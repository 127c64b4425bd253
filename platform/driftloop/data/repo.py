"""The data repository: ``{state}/datarepo`` is its own git + DVC repository.

Partitions are DVC-tracked (``*.parquet.dvc`` files in git, bytes in the DVC cache and remote);
a revision is a git commit of this repository, so every version stays readable by ``rev``. The
default remote is the local folder ``settings.dvc_remote_url`` (state/dvc-remote); any DVC remote
URL works by setting ``DRIFTLOOP_DATA__DVC_REMOTE`` (s3:// etc. need the matching dvc plugin).

DVC runs in-process through ``dvc.repo.Repo`` (one import, ~0.5 s, instead of a subprocess per
call); git runs as the ``git`` command.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from driftloop.errors import ConflictError, NotFoundError, ServiceUnavailableError
from driftloop.settings import Settings

if TYPE_CHECKING:
    from dvc.repo import Repo

logger = logging.getLogger(__name__)

REMOTE_NAME = "storage"
_GIT_ENV = {
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "driftloop",
    "GIT_AUTHOR_EMAIL": "driftloop@localhost",
    "GIT_COMMITTER_NAME": "driftloop",
    "GIT_COMMITTER_EMAIL": "driftloop@localhost",
}
_DVC_ENV = {"DVC_NO_ANALYTICS": "1", "ITERATIVE_DO_NOT_TRACK": "1"}


def _quiet_dvc() -> None:
    """DVC installs stdout handlers on its logger at import; route its records through the
    application's logging instead (warnings and errors only)."""
    dvc_logger = logging.getLogger("dvc")
    for handler in list(dvc_logger.handlers):
        dvc_logger.removeHandler(handler)
    dvc_logger.setLevel(logging.WARNING)


def _dvc_errors() -> tuple[type[BaseException], ...]:
    from dvc.exceptions import DvcException

    return (DvcException,)


class DataRepo:
    """The git + DVC repository holding the partitions."""

    def __init__(self, settings: Settings) -> None:
        self.root: Path = settings.state / "datarepo"
        self.remote_url = settings.dvc_remote_url
        self._lock_path = settings.state / "datarepo.lock"

    # -- state -------------------------------------------------------------------------------
    @property
    def exists(self) -> bool:
        return (self.root / ".git").is_dir() and (self.root / ".dvc").is_dir()

    def require(self) -> None:
        """Fail with a readable message when nothing was ever ingested here."""
        if not self.exists:
            raise NotFoundError(
                f"no data repository at {self.root}: run `driftloop ingest --from 2013-01 "
                "--to 2013-03` first (or point DRIFTLOOP_STATE_DIR at the right state folder)"
            )

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Exclusive lock: one ingest at a time per state folder."""
        self._lock_path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock_path.open("w") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise ConflictError(
                    f"another ingest holds {self._lock_path}; wait for it to finish"
                ) from None
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # -- git ---------------------------------------------------------------------------------
    def git(self, *args: str, check: bool = True) -> str:
        git = shutil.which("git")
        if git is None:
            raise ServiceUnavailableError("git is not installed; the data repository needs it")
        proc = subprocess.run(
            [git, *args],
            cwd=self.root,
            env={**os.environ, **_GIT_ENV},
            capture_output=True,
            text=True,
            check=False,
        )
        if check and proc.returncode != 0:
            detail = (proc.stderr or proc.stdout).strip().splitlines()
            raise ServiceUnavailableError(
                f"git {args[0]} failed in {self.root}: {detail[-1] if detail else proc.returncode}"
            )
        return proc.stdout

    def revision(self) -> str:
        self.require()
        return self.git("rev-parse", "HEAD").strip()

    def resolve(self, rev: str) -> str:
        """Full commit hash of ``rev`` (a hash, prefix, tag or HEAD~n)."""
        self.require()
        out = self.git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}", check=False)
        if not out.strip():
            raise NotFoundError(f"data revision {rev!r} does not exist in {self.root}")
        return out.strip()

    def commit(self, message: str) -> bool:
        """Stage everything (DVC keeps data files git-ignored) and commit; False: nothing new."""
        self.git("add", "-A")
        if not self.git("status", "--porcelain").strip():
            return False
        self.git("commit", "-q", "--no-verify", "-m", message)
        return True

    def show(self, path: str, rev: str) -> str | None:
        """Text of git-tracked ``path`` at ``rev`` (the profiles: small JSON kept in git, as DVC
        keeps metrics files); None when the revision does not hold it."""
        proc_out = self.git("show", f"{rev}:{path}", check=False)
        return proc_out or None

    def is_ancestor(self, older: str, newer: str) -> bool:
        """Whether revision ``older`` is ``newer`` or one of its ancestors."""
        git = shutil.which("git")
        if git is None:
            raise ServiceUnavailableError("git is not installed; the data repository needs it")
        proc = subprocess.run(
            [git, "merge-base", "--is-ancestor", older, newer],
            cwd=self.root,
            env={**os.environ, **_GIT_ENV},
            capture_output=True,
            check=False,
        )
        return proc.returncode == 0

    def list_files(self, folder: str, rev: str | None = None) -> list[str]:
        """Tracked ``*.dvc`` files under ``folder`` at ``rev`` (None: the working tree)."""
        if rev is None:
            return sorted(
                p.relative_to(self.root).as_posix() for p in (self.root / folder).glob("*.dvc")
            )
        out = self.git("ls-tree", "-r", "--name-only", rev, "--", folder)
        return sorted(line for line in out.splitlines() if line.endswith(".dvc"))

    def recorded_md5(self, path: str, rev: str | None = None) -> str | None:
        """md5 recorded in ``{path}.dvc`` at ``rev`` (None: working tree); None when untracked."""
        dvc_file = f"{path}.dvc"
        if rev is None:
            target = self.root / dvc_file
            if not target.is_file():
                return None
            text = target.read_text()
        else:
            text = self.git("show", f"{rev}:{dvc_file}", check=False)
            if not text.strip():
                return None
        meta: dict[str, Any] = yaml.safe_load(text) or {}
        outs = meta.get("outs") or [{}]
        md5 = outs[0].get("md5")
        return str(md5) if md5 else None

    # -- dvc ---------------------------------------------------------------------------------
    @contextlib.contextmanager
    def dvc(self) -> Iterator[Repo]:
        """An open ``dvc.repo.Repo``; DVC failures become ServiceUnavailableError."""
        os.environ.update(_DVC_ENV)
        from dvc.repo import Repo

        _quiet_dvc()
        try:
            with Repo(str(self.root)) as repo:
                yield repo
        except _dvc_errors() as err:
            raise ServiceUnavailableError(f"DVC failed in {self.root}: {err}") from err

    def ensure(self) -> None:
        """Create the repository on first use; keep the default remote equal to the setting."""
        os.environ.update(_DVC_ENV)
        from dvc.repo import Repo

        _quiet_dvc()
        created = False
        self.root.mkdir(parents=True, exist_ok=True)
        if not (self.root / ".git").is_dir():
            self.git("init", "-q", "-b", "main")
            self.git("config", "user.name", "driftloop")
            self.git("config", "user.email", "driftloop@localhost")
            self.git("config", "commit.gpgsign", "false")
            created = True
        if not (self.root / ".dvc").is_dir():
            Repo.init(str(self.root)).close()
            created = True
        with self.dvc() as repo:
            current = repo.config.get("remote", {}).get(REMOTE_NAME, {}).get("url")
            if current != self.remote_url or repo.config["core"].get("remote") != REMOTE_NAME:
                with repo.config.edit() as conf:
                    conf["remote"][REMOTE_NAME] = {"url": self.remote_url}
                    conf["core"]["remote"] = REMOTE_NAME
                    conf["core"]["autostage"] = False
                    conf["core"]["analytics"] = False
                logger.info(
                    "data repo %s: DVC remote %s = %s", self.root, REMOTE_NAME, self.remote_url
                )
        if created:
            self.commit("initialize driftloop data repository")
            logger.info("created data repository %s", self.root)

    def add_and_push(self, paths: list[str]) -> None:
        """``dvc add`` the files (unchanged ones are recognised by hash) and push to the remote."""
        if self._is_local_remote():
            Path(self.remote_url).expanduser().mkdir(parents=True, exist_ok=True)
        with self.dvc() as repo:
            if paths:
                repo.add([str(self.root / p) for p in paths])
            pushed = repo.push()
        logger.info("dvc push: %d new objects to %s", pushed, self.remote_url)

    def _is_local_remote(self) -> bool:
        return "://" not in self.remote_url or self.remote_url.startswith("file://")

    def read_bytes(self, path: str, rev: str | None = None) -> bytes:
        """Bytes of a tracked file in the working tree (rev None) or at revision ``rev``."""
        if rev is None:
            target = self.root / path
            if not target.is_file():
                raise NotFoundError(f"{path} is missing from the data repository {self.root}")
            return target.read_bytes()
        os.environ.update(_DVC_ENV)
        import dvc.api

        _quiet_dvc()
        try:
            data = dvc.api.read(path, repo=str(self.root), rev=rev, mode="rb")
        except _dvc_errors() as err:
            raise NotFoundError(f"{path} at data revision {rev} cannot be read: {err}") from err
        return bytes(data)

    def status(self, cloud: bool = False) -> dict[str, Any]:
        """``dvc status`` (``cloud=True``: against the remote, like ``dvc status -c``)."""
        with self.dvc() as repo:
            return dict(repo.status(cloud=cloud))
