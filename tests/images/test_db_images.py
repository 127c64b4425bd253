"""The locally built PostgreSQL and Redis images of `make k8s-e2e` (docker/Dockerfile.postgresql,
docker/Dockerfile.redis, scripts/k8s-local/db-images.sh), where the official images cannot be
pulled.

Static checks of the Dockerfiles (no Docker needed), and a real run of the PostgreSQL image's
entrypoint (docker/postgres-entrypoint.sh) on this machine's Debian PostgreSQL 15 - the same
packages the image installs - as an unprivileged user, on 127.0.0.1 and a Unix socket in a
temporary folder. The image builds and their in-container smoke checks run in db-images.sh.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from test_images_static import instructions

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
ENTRYPOINT = DOCKER / "postgres-entrypoint.sh"
DB_IMAGES = ROOT / "scripts" / "k8s-local" / "db-images.sh"
DOCKERFILES = {
    "postgresql": DOCKER / "Dockerfile.postgresql",
    "redis": DOCKER / "Dockerfile.redis",
}
PG_BIN = Path("/usr/lib/postgresql/15/bin")


# ------------------------------------------------------------------------------- static checks


@pytest.mark.parametrize("kind", sorted(DOCKERFILES))
def test_base_image_is_a_build_argument_defaulting_to_debian_bookworm(kind: str) -> None:
    ins = instructions(DOCKERFILES[kind])
    assert ins[0] == ("ARG", "BASE_IMAGE=debian:bookworm-slim")
    assert [args for word, args in ins if word == "FROM"] == ["${BASE_IMAGE}"]


@pytest.mark.parametrize(("kind", "user"), [("postgresql", "postgres"), ("redis", "redis")])
def test_uid_999_exists_before_the_packages_are_installed(kind: str, user: str) -> None:
    """The packages' maintainer scripts create their user when it is missing, with whatever uid
    is free; created first with 999 (the official images' uid, the chart's runAsUser) they keep
    it."""
    ins = instructions(DOCKERFILES[kind])
    run = " && ".join(args for word, args in ins if word == "RUN")
    group = run.index(f"groupadd --system --gid 999 {user}")
    useradd = run.index("useradd --system --uid 999 --gid 999")
    install = run.index("apt-get install")
    assert group < useradd < install
    assert re.search(rf"--uid 999 --gid 999 [^&]*\b{user}\b", run)
    # The build proves it, too.
    assert f'test "$(id -u {user}):$(id -g {user})" = 999:999' in run
    assert [args for word, args in ins if word == "USER"] == ["999:999"]


@pytest.mark.parametrize("kind", sorted(DOCKERFILES))
def test_dockerfile_works_with_the_legacy_builder_and_pins_no_latest(kind: str) -> None:
    ins = instructions(DOCKERFILES[kind])
    text = "\n".join(f"{word} {args}" for word, args in ins)  # comments dropped
    assert "--mount" not in text  # no BuildKit on Debian's docker.io 20.10 legacy builder
    assert "--chmod" not in text
    assert "latest" not in text.lower()
    # Bookworm's packages, without recommends, apt lists removed in the same layer.
    run = " ".join(args for word, args in ins if word == "RUN")
    assert "--no-install-recommends" in run
    assert "rm -rf /var/lib/apt/lists/*" in run
    # Nothing of the build context but the entrypoint.
    copies = [args for word, args in ins if word in {"COPY", "ADD"}]
    assert copies == (
        ["docker/postgres-entrypoint.sh /usr/local/bin/postgres-entrypoint.sh"]
        if kind == "postgresql"
        else []
    )


def test_postgresql_image_entrypoint_path_and_packages() -> None:
    ins = instructions(DOCKERFILES["postgresql"])
    assert [args for word, args in ins if word == "ENTRYPOINT"] == [
        '["/usr/local/bin/postgres-entrypoint.sh"]'
    ]
    assert [args for word, args in ins if word == "CMD"] == ['["postgres"]']
    env = " ".join(args for word, args in ins if word == "ENV")
    assert "PATH=/usr/lib/postgresql/15/bin:$PATH" in env
    assert "PGDATA=/var/lib/postgresql/data" in env
    run = " ".join(args for word, args in ins if word == "RUN")
    assert "postgresql-15" in run
    # The package makes no cluster of its own; the entrypoint's initdb makes PGDATA.
    assert "create_main_cluster" in run
    # The entrypoint is copied with its mode: it must be executable in the repository.
    assert ENTRYPOINT.stat().st_mode & 0o111
    assert ENTRYPOINT.read_text().startswith("#!/usr/bin/env bash\n")
    subprocess.run(["bash", "-n", str(ENTRYPOINT)], check=True)


def test_redis_image_has_server_and_cli_and_no_entrypoint() -> None:
    ins = instructions(DOCKERFILES["redis"])
    run = " ".join(args for word, args in ins if word == "RUN")
    assert re.search(r"apt-get install [^&]*redis-server redis-tools", run)
    assert "command -v redis-server && command -v redis-cli" in run
    assert "chown 999:999 /data" in run
    assert not [args for word, args in ins if word == "ENTRYPOINT"]
    assert [args for word, args in ins if word == "CMD"] == ['["redis-server"]']


def test_build_context_keeps_the_entrypoint() -> None:
    """With the repository root as context (`docker build -f docker/Dockerfile.postgresql .`),
    .dockerignore must not drop the entrypoint the Dockerfile COPYs."""
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for pattern in patterns:
        assert not Path("docker/postgres-entrypoint.sh").match(pattern), pattern
        assert pattern.rstrip("/") not in {"docker", "docker/*", "*.sh", "**/*.sh"}


def test_db_images_script_parses_and_builds_both_dockerfiles() -> None:
    subprocess.run(["bash", "-n", str(DB_IMAGES)], check=True)
    assert DB_IMAGES.stat().st_mode & 0o111
    text = DB_IMAGES.read_text()
    assert "docker/Dockerfile.postgresql docker/postgres-entrypoint.sh" in text
    assert "docker/Dockerfile.redis" in text
    assert "BASE_IMAGE=${BASE_IMAGE:-driftloop-base:local}" in text
    assert "export DOCKER_BUILDKIT=0" in text
    assert "driftloop-postgresql:15-local" in text
    assert "driftloop-redis:7-local" in text
    # Smoke containers are removed whatever happens.
    assert "trap cleanup EXIT" in text
    assert re.search(r'docker rm -f "\$PG_SMOKE" "\$REDIS_SMOKE"', text)


# ------------------------------------------------------------- the entrypoint on a real server

# PostgreSQL refuses to run as root: drop to nobody when the tests run as root.
AS_SERVER_USER = (
    ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"] if os.geteuid() == 0 else []
)
PASSWORD = "pw-in-env-only-7f3c9a1e"

INIT_SH = """#!/bin/sh
# Executable: the entrypoint runs it. Records the run, whether the temporary server listens on
# TCP (it must not), and every process's command line at this moment.
set -eu
echo ran >> "$DL_TEST_DIR/init-runs"
if pg_isready -q -h 127.0.0.1; then echo open; else echo closed; fi > "$DL_TEST_DIR/init-tcp"
psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \\
  -c 'CREATE TABLE init_sh (id int)'
for f in /proc/[0-9]*/cmdline; do
  tr '\\0' ' ' < "$f" 2>/dev/null || true
  echo
done > "$DL_TEST_DIR/init-cmdlines"
"""
# Not executable: sourced by the entrypoint ($0 is then the entrypoint's).
SOURCED_SH = 'printf "%s\\n" "$0" > "$DL_TEST_DIR/sourced-as"\n'
INIT_SQL = "CREATE TABLE init_sql (id int);\n"
# Records the arguments of every PostgreSQL program the entrypoint starts, then runs the real one
# (a pass-through, not a mock: the real server runs).
RECORDER = '#!/bin/sh\nprintf "%s\\n" "$(basename "$0") $*" >> "{log}"\nexec "{real}" "$@"\n'


@dataclass
class Pg:
    folder: Path
    port: int
    env: dict[str, str]

    @property
    def pgdata(self) -> Path:
        return self.folder / "data" / "pgdata"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def pg() -> Iterator[Pg]:
    needed = ("initdb", "pg_ctl", "postgres", "psql", "pg_isready")
    missing = [b for b in needed if not (PG_BIN / b).exists()]
    if missing:
        pytest.skip(f"Debian's PostgreSQL 15 is not installed ({PG_BIN}: no {', '.join(missing)})")
    if AS_SERVER_USER and not shutil.which("setpriv"):
        pytest.skip("running as root without setpriv to drop to an unprivileged user")
    # Not under pytest's tmp folder: its parents are private to the test user.
    with tempfile.TemporaryDirectory(prefix="driftloop-pgep-") as name:
        folder = Path(name)
        for sub in ("run", "init", "tmp", "bin"):
            (folder / sub).mkdir()
        (folder / "init" / "10-init.sh").write_text(INIT_SH)
        (folder / "init" / "10-init.sh").chmod(0o755)
        (folder / "init" / "20-init.sql").write_text(INIT_SQL)
        (folder / "init" / "30-sourced.sh").write_text(SOURCED_SH)
        (folder / "init" / "40-ignored.txt").write_text("not a script\n")
        for prog in ("initdb", "pg_ctl", "postgres", "psql"):
            shim = folder / "bin" / prog
            shim.write_text(RECORDER.format(log=folder / "argv.log", real=PG_BIN / prog))
            shim.chmod(0o755)
        if AS_SERVER_USER:
            for path in [folder, *folder.rglob("*")]:
                shutil.chown(path, "nobody", "nogroup")
        port = _free_port()
        env = {
            "PATH": f"{folder / 'bin'}:{PG_BIN}:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "PGDATA": str(folder / "data" / "pgdata"),
            "PGPORT": str(port),
            "POSTGRES_PASSWORD": PASSWORD,
            "POSTGRES_DB": "other",
            "POSTGRES_SOCKET_DIR": str(folder / "run"),
            "POSTGRES_INITDB_SCRIPTS": str(folder / "init"),
            "TMPDIR": str(folder / "tmp"),
            "DL_TEST_DIR": str(folder),
        }
        state = Pg(folder, port, env)
        try:
            yield state
        finally:
            stop_leftover_server(state)


class Server:
    """The entrypoint as the container's command, running until stopped (SIGINT: fast shutdown,
    the image's STOPSIGNAL)."""

    def __init__(self, pg: Pg, log_name: str, *args: str) -> None:
        self.pg = pg
        self.log = pg.folder / log_name
        with self.log.open("w") as out:
            self.proc = subprocess.Popen(
                [*AS_SERVER_USER, str(ENTRYPOINT), *args],
                env=pg.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"entrypoint exited {self.proc.returncode}:\n{self.output()}")
            ready = subprocess.run(
                [PG_BIN / "pg_isready", "-q", "-h", "127.0.0.1", "-p", str(self.pg.port)],
                check=False,
            )
            if ready.returncode == 0:
                return
            time.sleep(0.3)
        raise AssertionError(f"no server on 127.0.0.1:{self.pg.port}:\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)
        stop_leftover_server(self.pg)


def stop_leftover_server(pg: Pg) -> None:
    """A server the entrypoint left behind (e.g. the init's, when it was killed mid-way)."""
    if (pg.pgdata / "postmaster.pid").exists():
        subprocess.run(
            [
                *AS_SERVER_USER,
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(pg.pgdata),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
            capture_output=True,
            timeout=60,
            check=False,
        )


def psql_tcp(
    pg: Pg, password: str, sql: str, db: str = "other"
) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "PGPASSWORD": password, "PGCONNECT_TIMEOUT": "10"}
    cmd = [str(PG_BIN / "psql"), "-h", "127.0.0.1", "-p", str(pg.port), "-U", "postgres"]
    return subprocess.run(
        [*cmd, "-d", db, "-v", "ON_ERROR_STOP=1", "-tA", "--no-psqlrc", "-c", sql],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _cmdlines() -> str:
    out = []
    for path in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            out.append(path.read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:
            continue  # the process ended meanwhile
    return "\n".join(out)


@pytest.mark.integration
def test_entrypoint_initialises_once_and_serves_with_password_auth(pg: Pg) -> None:
    first = Server(pg, "first.log", "postgres", "-c", "listen_addresses=127.0.0.1")
    try:
        first.wait_ready()
        # Initialisation: POSTGRES_DB made, every init file run in order, the .txt ignored.
        assert (pg.folder / "init-runs").read_text() == "ran\n"
        # The temporary server of the init listened on the Unix socket only.
        assert (pg.folder / "init-tcp").read_text().strip() == "closed"
        assert (pg.folder / "sourced-as").read_text().strip().endswith("postgres-entrypoint.sh")
        assert "ignoring" in first.output()
        assert "40-ignored.txt" in first.output()
        tables = psql_tcp(
            pg,
            PASSWORD,
            "select string_agg(tablename, ',' order by tablename) "
            "from pg_tables where schemaname = 'public'",
        )
        assert tables.returncode == 0, tables.stderr
        assert tables.stdout.strip() == "init_sh,init_sql"

        # Every TCP connection needs the password (SCRAM), also from 127.0.0.1.
        wrong = psql_tcp(pg, "not-the-password", "select 1")
        assert wrong.returncode != 0
        assert "password authentication failed" in wrong.stderr
        method = psql_tcp(
            pg,
            PASSWORD,
            "select rolpassword like 'SCRAM-SHA-256$%' from pg_authid where rolname = 'postgres'",
        )
        assert method.stdout.strip() == "t", method.stderr
        hba = (pg.pgdata / "pg_hba.conf").read_text()
        rules = [line.split() for line in hba.splitlines() if line and not line.startswith("#")]
        assert rules == [
            ["local", "all", "all", "trust"],
            ["host", "all", "all", "all", "scram-sha-256"],
        ]
        # The Unix socket is where the chart's init script and `kubectl exec psql` connect.
        assert (pg.folder / "run" / f".s.PGSQL.{pg.port}").is_socket()

        # The password is in no process's arguments: not now, not during the init, not in what
        # the entrypoint passed to initdb/pg_ctl/postgres/psql; the password file is gone.
        assert PASSWORD not in _cmdlines()
        during_init = (pg.folder / "init-cmdlines").read_text()
        assert "postgres" in during_init  # it did see the temporary server
        assert PASSWORD not in during_init
        argv = (pg.folder / "argv.log").read_text()
        assert "initdb " in argv
        assert "--pwfile=" in argv
        assert "listen_addresses=''" in argv
        assert PASSWORD not in argv
        assert list((pg.folder / "tmp").iterdir()) == []
        assert not (pg.pgdata / ".driftloop-init-incomplete").exists()
    finally:
        first.stop()
    assert first.proc.returncode == 0, first.output()

    # A second start on the same PGDATA serves the same database and does not initialise again.
    (pg.folder / "argv.log").unlink()
    second = Server(pg, "second.log", "-c", "listen_addresses=127.0.0.1")
    try:
        second.wait_ready()
        assert (pg.folder / "init-runs").read_text() == "ran\n"
        assert "skipping initialisation" in second.output()
        assert "initdb " not in (pg.folder / "argv.log").read_text()
        again = psql_tcp(pg, PASSWORD, "select count(*) from init_sql")
        assert again.returncode == 0, again.stderr
        assert again.stdout.strip() == "0"
        dbs = psql_tcp(
            pg, PASSWORD, "select datname from pg_database where datname = 'other'", db="postgres"
        )
        assert dbs.stdout.strip() == "other"
    finally:
        second.stop()
    assert second.proc.returncode == 0, second.output()


@pytest.mark.integration
def test_entrypoint_refuses_to_initialise_without_a_password(pg: Pg) -> None:
    env = {k: v for k, v in pg.env.items() if k != "POSTGRES_PASSWORD"}
    result = subprocess.run(
        [*AS_SERVER_USER, str(ENTRYPOINT), "postgres"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "POSTGRES_PASSWORD" in result.stderr
    assert not (pg.pgdata / "PG_VERSION").exists()


@pytest.mark.integration
def test_a_failed_init_script_stops_the_server_and_blocks_a_half_initialised_pgdata(
    pg: Pg,
) -> None:
    broken = pg.folder / "init" / "15-broken.sql"
    broken.write_text("SELECT * FROM no_such_table;\n")
    if AS_SERVER_USER:
        shutil.chown(broken, "nobody", "nogroup")
    failed = subprocess.run(
        [*AS_SERVER_USER, str(ENTRYPOINT), "postgres"],
        env=pg.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=180,
        check=False,
    )
    assert failed.returncode != 0
    assert "no_such_table" in failed.stdout
    # The temporary server was stopped and the password file removed.
    assert not (pg.pgdata / "postmaster.pid").exists()
    assert list((pg.folder / "tmp").iterdir()) == []
    # The next start refuses the half-initialised PGDATA instead of serving it.
    broken.unlink()
    again = subprocess.run(
        [*AS_SERVER_USER, str(ENTRYPOINT), "postgres"],
        env=pg.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert again.returncode != 0
    assert "initialisation of" in again.stderr
    assert (pg.folder / "init-runs").read_text() == "ran\n"


def test_a_command_other_than_postgres_runs_as_is() -> None:
    result = subprocess.run(
        [str(ENTRYPOINT), "sh", "-c", "echo $((6 * 7))"],
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert result.stdout == "42\n"
