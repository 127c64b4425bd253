#!/usr/bin/env bash
# Build the PostgreSQL and Redis images the chart's StatefulSets run in `make k8s-e2e`, where the
# official postgres/redis images cannot be pulled: Debian bookworm's packages on the debootstrap
# base (docker/Dockerfile.postgresql, docker/Dockerfile.redis), then smoke-check each new image
# inside its container (no container networking). The chart's defaults stay the official images.
#
#   DOCKER_HOST=unix://$HOME/.cache/driftloop-k8s/dockerd/docker.sock scripts/k8s-local/db-images.sh
#
# Environment (all optional):
#   POSTGRES_IMAGE (driftloop-postgresql:15-local)  REDIS_IMAGE (driftloop-redis:7-local)
#   BASE_IMAGE (driftloop-base:local; scripts/images.sh makes it with debootstrap)
#   REBUILD (0)   1: build even when the image exists
#   SMOKE (1)     0: no smoke check after building
# Uses the Docker engine DOCKER_HOST points at (e2e.sh exports the private one); works with
# Debian's docker.io 20.10 legacy builder (no BuildKit).
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$REPO_ROOT"

POSTGRES_IMAGE=${POSTGRES_IMAGE:-driftloop-postgresql:15-local}
REDIS_IMAGE=${REDIS_IMAGE:-driftloop-redis:7-local}
BASE_IMAGE=${BASE_IMAGE:-driftloop-base:local}
REBUILD=${REBUILD:-0}
SMOKE=${SMOKE:-1}
export DOCKER_BUILDKIT=0
PG_SMOKE=driftloop-postgresql-smoke-$$
REDIS_SMOKE=driftloop-redis-smoke-$$
SMOKE_DIR=""
declare -A SUMMARY=()

cleanup() {
  local rc=$?
  docker rm -f "$PG_SMOKE" "$REDIS_SMOKE" >/dev/null 2>&1 || true
  [[ -z "$SMOKE_DIR" ]] || rm -rf "$SMOKE_DIR"
  exit "$rc"
}
trap cleanup EXIT

command -v docker >/dev/null || die "docker CLI not found"
docker info >/dev/null 2>&1 \
  || die "no Docker engine at DOCKER_HOST=${DOCKER_HOST:-<unset>} (scripts/k8s-local/docker-up.sh starts one)"

exists() { docker image inspect "$1" >/dev/null 2>&1; }

# build NAME DOCKERFILE [FILE...]: build unless present (REBUILD=1 rebuilds); 0 when built, 1
# when skipped. The build context is the Dockerfile and the FILEs it COPYs only (paths from the
# repository root, as with `docker build -f DOCKERFILE .`), not the whole tree.
build() {
  local name=$1 file=$2 start=$SECONDS
  shift 2
  if exists "$name" && [[ "$REBUILD" != 1 ]]; then
    SUMMARY[$name]="exists, not rebuilt (REBUILD=1 rebuilds)"
    return 1
  fi
  exists "$BASE_IMAGE" \
    || die "base image $BASE_IMAGE is missing: scripts/images.sh makes it (debootstrap), or set BASE_IMAGE"
  log "building $name ($file, base $BASE_IMAGE)"
  tar -c "$file" "$@" | docker build -f "$file" -t "$name" --build-arg "BASE_IMAGE=$BASE_IMAGE" - \
    || die "docker build of $name failed"
  SUMMARY[$name]="built in $((SECONDS - start))s"
  return 0
}

# until_ok SECONDS CONTAINER DESCRIPTION COMMAND...: poll COMMAND until it succeeds while the
# container runs; on failure show the container's log and stop.
until_ok() {
  local limit=$1 container=$2 what=$3 i
  shift 3
  for ((i = 0; i < limit; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    if [[ "$(docker inspect -f '{{.State.Running}}' "$container" 2>/dev/null)" != true ]]; then
      docker logs --tail 40 "$container" >&2 || true
      die "$container exited before $what"
    fi
    sleep 1
  done
  docker logs --tail 40 "$container" >&2 || true
  die "timed out after ${limit}s waiting for $what"
}

# PostgreSQL as the chart runs it: uid 999, read-only root, data/socket/tmp on writable mounts
# (Docker's tmpfs takes the image folder's mode but root as owner: uid/gid given; in the pod,
# fsGroup does that), PGDATA a subfolder of the data mount, an executable init script; checked
# from inside.
smoke_postgresql() {
  local start=$SECONDS password out
  password="smoke-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
  cat >"$SMOKE_DIR/10-smoke.sh" <<'EOF'
#!/bin/sh
set -eu
psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -c 'CREATE TABLE smoke_init (id int)'
EOF
  chmod 755 "$SMOKE_DIR" "$SMOKE_DIR/10-smoke.sh"
  log "smoke: $POSTGRES_IMAGE (uid 999, read-only root, init script)"
  # The password reaches the container through the environment, not the command line.
  POSTGRES_PASSWORD=$password docker run -d --name "$PG_SMOKE" --user 999:999 --read-only \
    --tmpfs /var/lib/postgresql/data:uid=999,gid=999 --tmpfs /var/run/postgresql:uid=999,gid=999 \
    --tmpfs /tmp \
    -v "$SMOKE_DIR:/docker-entrypoint-initdb.d:ro" \
    -e POSTGRES_PASSWORD -e POSTGRES_USER=postgres -e POSTGRES_DB=smoke \
    -e PGDATA=/var/lib/postgresql/data/pgdata \
    "$POSTGRES_IMAGE" -c listen_addresses=127.0.0.1 >/dev/null
  until_ok 120 "$PG_SMOKE" "PostgreSQL on 127.0.0.1" \
    docker exec "$PG_SMOKE" pg_isready -h 127.0.0.1 -U postgres -d smoke
  out=$(PGPASSWORD=$password docker exec -e PGPASSWORD "$PG_SMOKE" \
    psql -h 127.0.0.1 -U postgres -d smoke -tA -c 'select 1' -c 'select count(*) from smoke_init') \
    || die "psql over 127.0.0.1 with the password failed"
  [[ "$out" == $'1\n0' ]] || die "unexpected psql answer: $out"
  if PGPASSWORD=wrong docker exec -e PGPASSWORD "$PG_SMOKE" \
    psql -h 127.0.0.1 -U postgres -d smoke -c 'select 1' >/dev/null 2>&1; then
    die "psql over 127.0.0.1 with a wrong password succeeded"
  fi
  [[ "$(docker exec "$PG_SMOKE" id -u)" == 999 ]] || die "$POSTGRES_IMAGE does not run as uid 999"
  docker rm -f "$PG_SMOKE" >/dev/null
  SUMMARY[$POSTGRES_IMAGE]+=", smoke ok in $((SECONDS - start))s"
}

# Redis as the chart runs it: password in a private config file on /tmp, exec redis-server.
smoke_redis() {
  local start=$SECONDS out
  log "smoke: $REDIS_IMAGE (uid 999, read-only root, password)"
  # shellcheck disable=SC2016  # expanded by the container's sh
  REDIS_PASSWORD=x docker run -d --name "$REDIS_SMOKE" --user 999:999 --read-only \
    --tmpfs /data:uid=999,gid=999 --tmpfs /tmp -e REDIS_PASSWORD "$REDIS_IMAGE" sh -c \
    'umask 077 && printf "requirepass \"%s\"\n" "$REDIS_PASSWORD" > /tmp/redis.conf && exec redis-server /tmp/redis.conf --port 6390 --dir /data --appendonly no --save ""' \
    >/dev/null
  until_ok 60 "$REDIS_SMOKE" "redis-server on port 6390" \
    docker exec "$REDIS_SMOKE" redis-cli --no-auth-warning -a x -p 6390 ping
  out=$(docker exec "$REDIS_SMOKE" redis-cli --no-auth-warning -a x -p 6390 ping)
  [[ "$out" == PONG ]] || die "redis-cli ping with the password answered: $out"
  out=$(docker exec "$REDIS_SMOKE" redis-cli -p 6390 ping 2>&1 || true)
  [[ "$out" == *NOAUTH* ]] || die "redis-cli ping without the password answered: $out"
  [[ "$(docker exec "$REDIS_SMOKE" id -u)" == 999 ]] || die "$REDIS_IMAGE does not run as uid 999"
  docker rm -f "$REDIS_SMOKE" >/dev/null
  SUMMARY[$REDIS_IMAGE]+=", smoke ok in $((SECONDS - start))s"
}

SMOKE_DIR=$(mktemp -d /tmp/driftloop-db-smoke.XXXXXX)
if build "$POSTGRES_IMAGE" docker/Dockerfile.postgresql docker/postgres-entrypoint.sh && [[ "$SMOKE" == 1 ]]; then
  smoke_postgresql
fi
if build "$REDIS_IMAGE" docker/Dockerfile.redis && [[ "$SMOKE" == 1 ]]; then
  smoke_redis
fi

log "summary:"
for image in "$POSTGRES_IMAGE" "$REDIS_IMAGE"; do
  size=$(docker image inspect -f '{{.Size}}' "$image")
  printf '  %-32s %6d MB  %s\n' "$image" $((size / 1000000)) "${SUMMARY[$image]}" >&2
done
