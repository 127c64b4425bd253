#!/usr/bin/env bash
# Entrypoint of the locally built PostgreSQL image (docker/Dockerfile.postgresql, Debian's
# postgresql-15). It implements the part of the official image's docker-entrypoint.sh that the
# chart (helm/driftloop/templates/postgresql/) uses, for a container that runs as the postgres
# user (uid 999) on a read-only root filesystem:
#
#   env  POSTGRES_PASSWORD (required to initialise), POSTGRES_USER (postgres),
#        POSTGRES_DB (POSTGRES_USER), PGDATA (/var/lib/postgresql/data), PGPORT (5432; postgres,
#        pg_ctl and psql read it themselves)
#   args postgres [ARGS...] or only ARGS (flags): the server's arguments, e.g.
#        `-c listen_addresses=127.0.0.1`; any other command is run as is (`psql --version`).
#
# On an uninitialised PGDATA (no PG_VERSION): initdb (superuser password from a 0600 file in a
# private temporary folder, never on a command line or in a file that outlives the init), then
# pg_hba.conf as in the official image (trust on the Unix socket, SCRAM for every TCP
# connection), then a temporary server on the Unix socket only, which creates POSTGRES_DB and runs
# /docker-entrypoint-initdb.d/* (*.sh executed when executable, else sourced; *.sql through
# psql), and stops. Then `exec postgres ARGS`. A PGDATA whose initialisation failed half-way is
# refused on the next start (a marker file), instead of starting without what the init makes.
#
# Writable: PGDATA, the socket folder, TMPDIR. Tests override the folders:
#   POSTGRES_SOCKET_DIR (/var/run/postgresql), POSTGRES_INITDB_SCRIPTS (/docker-entrypoint-initdb.d)
set -euo pipefail

log() { printf '%s: %s\n' "${0##*/}" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# Server mode for `postgres ...`, for flags only and for no arguments; anything else runs as is.
if [ "$#" -eq 0 ] || [ "${1#-}" != "$1" ]; then
  set -- postgres "$@"
fi
if [ "$1" != postgres ]; then
  exec "$@"
fi
shift

export PGDATA="${PGDATA:-/var/lib/postgresql/data}"
export POSTGRES_USER="${POSTGRES_USER:-postgres}"
export POSTGRES_DB="${POSTGRES_DB:-$POSTGRES_USER}"
SOCKET_DIR="${POSTGRES_SOCKET_DIR:-/var/run/postgresql}"
INITDB_SCRIPTS="${POSTGRES_INITDB_SCRIPTS:-/docker-entrypoint-initdb.d}"
INCOMPLETE="$PGDATA/.driftloop-init-incomplete"

[ "$(id -u)" != 0 ] || die "PostgreSQL does not run as root: run the container as uid 999"

if [ -e "$INCOMPLETE" ]; then
  die "the initialisation of $PGDATA failed earlier (see that run's log); empty $PGDATA to retry"
fi

# psql for the init steps: the temporary server's socket, the superuser, stop at the first error.
init_psql() {
  psql -v ON_ERROR_STOP=1 --no-psqlrc --no-password --host "$SOCKET_DIR" \
    --username "$POSTGRES_USER" "$@"
}

TEMP_SERVER=0
INIT_TMP=""
init_cleanup() {
  if [ "$TEMP_SERVER" = 1 ]; then
    pg_ctl -D "$PGDATA" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  [ -z "$INIT_TMP" ] || rm -rf "$INIT_TMP"
}

init_database() {
  [ -n "${POSTGRES_PASSWORD:-}" ] \
    || die "$PGDATA is not initialised and POSTGRES_PASSWORD is empty: set the superuser password"
  ls "$INITDB_SCRIPTS/" >/dev/null 2>&1 || log "no $INITDB_SCRIPTS: no init scripts to run"
  mkdir -p "$PGDATA"
  chmod 700 "$PGDATA" 2>/dev/null || true # initdb says so when it cannot fix it either

  INIT_TMP=$(mktemp -d "${TMPDIR:-/tmp}/postgres-init.XXXXXX") # mode 0700
  local tmp=$INIT_TMP
  # On any failure: stop the temporary server and remove the password file.
  trap 'init_cleanup' EXIT

  # printf is a shell builtin: the password never appears in a process's arguments.
  (umask 077 && printf '%s\n' "$POSTGRES_PASSWORD" >"$tmp/pwfile")
  log "initdb $PGDATA (superuser $POSTGRES_USER)"
  initdb --pgdata="$PGDATA" --username="$POSTGRES_USER" --pwfile="$tmp/pwfile" \
    --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >&2
  rm -f "$tmp/pwfile"
  : >"$INCOMPLETE"

  # As the official image: trust on the Unix socket (reachable inside the pod only), a password
  # for every TCP connection (password_encryption is scram-sha-256, PostgreSQL's default).
  cat >"$PGDATA/pg_hba.conf" <<'EOF'
# TYPE  DATABASE  USER  ADDRESS  METHOD   (written by postgres-entrypoint.sh)
local   all       all            trust
host    all       all   all      scram-sha-256
EOF

  log "temporary server on the Unix socket only ($SOCKET_DIR)"
  local opts=""
  if [ "$#" -gt 0 ]; then opts="$(printf '%q ' "$@")"; fi
  opts+="-c listen_addresses='' -k $(printf '%q' "$SOCKET_DIR")"
  TEMP_SERVER=1
  pg_ctl -D "$PGDATA" -o "$opts" -t 120 -w start >&2

  if [ "$POSTGRES_DB" != postgres ]; then
    local exists
    exists=$(init_psql --dbname postgres --tuples-only --no-align --set db="$POSTGRES_DB" \
      <<<"SELECT 1 FROM pg_database WHERE datname = :'db';")
    if [ -z "$exists" ]; then
      log "creating database $POSTGRES_DB"
      init_psql --dbname postgres --set db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";' >&2
    fi
  fi

  local f
  for f in "$INITDB_SCRIPTS"/*; do
    [ -e "$f" ] || continue
    case "$f" in
      *.sh)
        if [ -x "$f" ]; then
          log "running $f"
          PGHOST="$SOCKET_DIR" "$f"
        else
          log "sourcing $f"
          # shellcheck disable=SC1090
          PGHOST="$SOCKET_DIR" . "$f"
        fi
        ;;
      *.sql)
        log "running $f"
        init_psql --dbname "$POSTGRES_DB" -f "$f" >&2
        ;;
      *) log "ignoring $f" ;;
    esac
  done

  pg_ctl -D "$PGDATA" -m fast -w stop >&2
  TEMP_SERVER=0
  rm -f "$INCOMPLETE"
  rm -rf "$tmp"
  trap - EXIT
  log "init complete"
}

if [ -s "$PGDATA/PG_VERSION" ]; then
  log "$PGDATA holds a database: skipping initialisation"
else
  init_database "$@"
fi

exec postgres -k "$SOCKET_DIR" "$@"
