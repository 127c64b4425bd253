#!/usr/bin/env bash
# Build the driftloop container images and smoke-test them.
#
#   scripts/images.sh                 # driftloop-platform:dev and driftloop-serving:dev
#   TAG=1.2.3 TORCH_VARIANT=cu128 scripts/images.sh   # GPU platform image
#
# Environment (all optional):
#   TAG (dev)              image tag             PLATFORM_IMAGE / SERVING_IMAGE  image names
#   BASE_IMAGE             base of both images (default python:3.11-slim; on a machine without a
#                          Docker engine or registry access: driftloop-base:local, see below)
#   TORCH_VARIANT (cpu)    torch build of the platform image: cpu, cu128, ...
#   TORCH_WHEEL_DIR (/opt/wheels)  a folder holding torch-<ver>+<variant>-cp311-*.whl to use
#                          instead of download.pytorch.org (copied into docker/wheels/)
#   SMOKE (1)              run the smoke checks after building
#   SBOM_DIR (build/sbom)  where the CycloneDX SBOM of each image is written
#   KEEP_DOCKER (0)        leave a private Docker engine started by this script running
#
# With no reachable Docker engine but dockerd installed (e.g. Debian's docker.io), a private engine
# is started (scripts/k8s-local/docker-up.sh) and stopped again afterwards; its images persist
# under ~/.cache/driftloop-k8s/docker. Without registry access, the base image is made with
# debootstrap from the Debian mirror apt uses (Debian bookworm: python3 is 3.11) as
# driftloop-base:local.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO_ROOT=$PWD
TAG=${TAG:-dev}
PLATFORM_IMAGE=${PLATFORM_IMAGE:-driftloop-platform}
SERVING_IMAGE=${SERVING_IMAGE:-driftloop-serving}
TORCH_VARIANT=${TORCH_VARIANT:-cpu}
TORCH_VERSION=${TORCH_VERSION:-2.13.0}
TORCH_WHEEL_DIR=${TORCH_WHEEL_DIR:-/opt/wheels}
SMOKE=${SMOKE:-1}
KEEP_DOCKER=${KEEP_DOCKER:-0}
LOCAL_BASE=driftloop-base:local
K8S_LOCAL="$REPO_ROOT/scripts/k8s-local"

log() { printf '[images %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
declare -A TIMES=()

started_docker=0
cleanup() {
  local rc=$?
  docker rm -f driftloop-serving-smoke >/dev/null 2>&1 || true
  find docker/wheels -name 'torch-*.whl' -delete 2>/dev/null || true
  rm -f docker/certs/ca-bundle.crt
  if ((started_docker)) && [[ "$KEEP_DOCKER" != 1 ]]; then "$K8S_LOCAL/docker-down.sh" || true; fi
  exit "$rc"
}
trap cleanup EXIT

# 1. A Docker engine.
command -v docker >/dev/null || die "docker CLI not found: install Docker (or Debian's docker.io)"
if ! docker info >/dev/null 2>&1; then
  command -v dockerd >/dev/null || die "no Docker engine reachable and no dockerd to start"
  log "no Docker engine reachable: using a private one (scripts/k8s-local/docker-up.sh)"
  DRIFTLOOP_DOCKER_STARTED=0
  env_line=$("$K8S_LOCAL/docker-up.sh") || die "could not start a private Docker engine"
  eval "$env_line"
  # Stop it at the end only when this run started it (the k8s-local cluster may be using it).
  started_docker=$DRIFTLOOP_DOCKER_STARTED
  # That engine (Debian's 20.10) has the legacy builder only.
  export DOCKER_BUILDKIT=0
  BASE_IMAGE=${BASE_IMAGE:-$LOCAL_BASE}
fi
BASE_IMAGE=${BASE_IMAGE:-python:3.11-slim}

# 2. The base image (debootstrap when asked for the local one and it is missing).
if [[ "$BASE_IMAGE" == "$LOCAL_BASE" ]] && ! docker image inspect "$LOCAL_BASE" >/dev/null 2>&1; then
  start=$SECONDS
  command -v debootstrap >/dev/null || die "debootstrap not found: apt-get install debootstrap"
  source "$K8S_LOCAL/common.sh"
  rootfs=$(mktemp -d /tmp/driftloop-rootfs.XXXXXX)
  log "debootstrap bookworm (python3 3.11) into $rootfs from $(debian_mirror)"
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm \
    "$rootfs" "$(debian_mirror)" >"$rootfs.log" 2>&1 || { tail -20 "$rootfs.log" >&2; die "debootstrap failed"; }
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -c . | docker import \
    --change 'ENV LANG=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["python3"]' - "$LOCAL_BASE" >/dev/null
  rm -rf "$rootfs" "$rootfs.log"
  TIMES[base]=$((SECONDS - start))
fi

# 3. A local torch wheel, when the host has one, goes into the build context (docker/wheels/).
find docker/wheels -name 'torch-*.whl' -delete
for whl in "$TORCH_WHEEL_DIR"/torch-"$TORCH_VERSION"+cpu-cp311-*.whl \
  "$TORCH_WHEEL_DIR"/torch-"$TORCH_VERSION"+"$TORCH_VARIANT"-cp311-*.whl; do
  [[ -f "$whl" ]] || continue
  [[ -f "docker/wheels/$(basename "$whl")" ]] && continue
  log "using local wheel $whl"
  cp -l "$whl" docker/wheels/ 2>/dev/null || cp "$whl" docker/wheels/
done

# 3b. The CA bundle pip trusts on this host, when it has a custom one (TLS-inspecting proxies).
find docker/certs -name 'ca-bundle.crt' -delete
ca=${PIP_CERT:-$(pip config get global.cert 2>/dev/null || true)}
if [[ -n "$ca" && -f "$ca" ]]; then
  log "pip inside the build trusts $ca"
  cp "$ca" docker/certs/ca-bundle.crt
fi

build() { # NAME DOCKERFILE ARGS...
  local name=$1 file=$2 start=$SECONDS
  shift 2
  log "building $name (base $BASE_IMAGE)"
  docker build -f "$file" -t "$name" --build-arg "BASE_IMAGE=$BASE_IMAGE" "$@" . \
    || die "docker build of $name failed"
  TIMES[$name]=$((SECONDS - start))
}
build "$PLATFORM_IMAGE:$TAG" docker/Dockerfile.platform \
  --build-arg "TORCH_VARIANT=$TORCH_VARIANT" --build-arg "TORCH_VERSION=$TORCH_VERSION"
build "$SERVING_IMAGE:$TAG" docker/Dockerfile.serving --build-arg "TORCH_VERSION=$TORCH_VERSION"
find docker/wheels -name 'torch-*.whl' -delete
find docker/certs -name 'ca-bundle.crt' -delete

# 3c. A CycloneDX SBOM of each image's Python environment, next to the build outputs
#     (build/sbom/<image>-<tag>.cdx.json; SBOM_MLFLOW=1 also logs it to MLflow, run "build IMAGE").
SBOM_DIR=${SBOM_DIR:-$REPO_ROOT/build/sbom}
for image in "$PLATFORM_IMAGE:$TAG" "$SERVING_IMAGE:$TAG"; do
  "$REPO_ROOT/scripts/sbom.sh" "$image" "$SBOM_DIR" >/dev/null || die "SBOM of $image failed"
done

# 4. Smoke checks: the CLI answers --help; the serving container answers its health checks from
#    inside the container (127.0.0.1), so nothing depends on container networking.
if [[ "$SMOKE" == 1 ]]; then
  log "smoke: docker run --rm $PLATFORM_IMAGE:$TAG --help"
  docker run --rm "$PLATFORM_IMAGE:$TAG" --help >/dev/null || die "platform image: --help failed"
  [[ "$(docker run --rm --entrypoint id "$PLATFORM_IMAGE:$TAG" -u)" == 10001 ]] \
    || die "platform image does not run as uid 10001"
  log "smoke: serving container, /v2/health/live and /ready from inside"
  docker rm -f driftloop-serving-smoke >/dev/null 2>&1 || true
  docker run -d --name driftloop-serving-smoke \
    -e DRIFTLOOP_MLFLOW__TRACKING_URI=http://127.0.0.1:5000 "$SERVING_IMAGE:$TAG" >/dev/null
  probe='import sys, urllib.request, urllib.error
try:
    r = urllib.request.urlopen("http://127.0.0.1:8000" + sys.argv[1], timeout=3); print(r.status)
except urllib.error.HTTPError as e:
    print(e.code)'
  live=""
  for _ in $(seq 1 90); do
    live=$(docker exec driftloop-serving-smoke python -c "$probe" /v2/health/live 2>/dev/null || true)
    [[ "$live" == 200 ]] && break
    if [[ "$(docker inspect -f '{{.State.Running}}' driftloop-serving-smoke)" != true ]]; then
      docker logs --tail 30 driftloop-serving-smoke >&2 || true
      die "serving container exited"
    fi
    sleep 1
  done
  [[ "$live" == 200 ]] || { docker logs --tail 30 driftloop-serving-smoke >&2; die "serving /v2/health/live did not answer 200"; }
  ready=$(docker exec driftloop-serving-smoke python -c "$probe" /v2/health/ready || true)
  log "serving: /v2/health/live -> $live, /v2/health/ready -> ${ready:-no answer} (no MLflow here, so not ready is expected)"
  [[ -n "$ready" ]] || die "serving /v2/health/ready did not answer"
  [[ "$(docker exec driftloop-serving-smoke id -u)" == 10001 ]] || die "serving image does not run as uid 10001"
  docker rm -f driftloop-serving-smoke >/dev/null
fi

log "summary:"
for image in "$PLATFORM_IMAGE:$TAG" "$SERVING_IMAGE:$TAG"; do
  size=$(docker image inspect -f '{{.Size}}' "$image")
  printf '  %-32s %6d MB  built in %ss\n' "$image" $((size / 1000000)) "${TIMES[$image]:-?}" >&2
done
[[ -z "${TIMES[base]:-}" ]] || printf '  %-32s built in %ss\n' "$LOCAL_BASE" "${TIMES[base]}" >&2
