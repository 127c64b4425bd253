# shellcheck shell=bash
# Shared paths and helpers for scripts/k8s-local/*.sh (sourced, not executed).
# Everything lives under $K8S_CACHE (default ~/.cache/driftloop-k8s): the Kubernetes build (kept
# between runs) and the run folder (certs, logs, pids; removed by cluster-down.sh).
set -euo pipefail
K8S_CACHE="${DRIFTLOOP_K8S_CACHE:-$HOME/.cache/driftloop-k8s}"
K8S_VERSION=1.20.2
K8S_SRC="$K8S_CACHE/src"
K8S_BIN="$K8S_CACHE/bin"
K8S_RUN="$K8S_CACHE/run"
DOCKER_ROOT="${DRIFTLOOP_DOCKER_ROOT:-$K8S_CACHE/docker}"
DOCKER_RUN="$K8S_CACHE/dockerd"
DOCKER_SOCK="$DOCKER_RUN/docker.sock"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$REPO_ROOT/scripts/k8s-local"
export MLFLOW_DISABLE_TELEMETRY=true DO_NOT_TRACK=true PREFECT_SERVER_ANALYTICS_ENABLED=false \
  DVC_NO_ANALYTICS=1 ITERATIVE_DO_NOT_TRACK=1

log() { printf '[k8s-local %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# wait_for SECONDS DESCRIPTION COMMAND...: poll COMMAND every second until it succeeds.
wait_for() {
  local limit=$1 what=$2; shift 2
  local i
  for ((i = 0; i < limit; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 1
  done
  die "timed out after ${limit}s waiting for $what"
}

# The Debian mirror the system's apt uses (deb822 or one-line format); DEBIAN_MIRROR overrides.
debian_mirror() {
  if [[ -n "${DEBIAN_MIRROR:-}" ]]; then echo "$DEBIAN_MIRROR"; return; fi
  local m
  m=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null \
    | awk '/^URIs:/{u=$2} /^Suites:/{ for (i = 2; i <= NF; i++) if ($i == "bookworm") { print u; exit } }')
  if [[ -z "$m" ]]; then
    m=$(grep -hE '^deb +[^ ]+ +bookworm +' /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
      2>/dev/null | awk '{print $2; exit}')
  fi
  echo "${m:-http://deb.debian.org/debian}"
}

# Stop the process whose pid is in FILE (TERM, then KILL after a grace period), remove FILE.
stop_pidfile() {
  local file=$1 pid i
  [[ -f "$file" ]] || return 0
  pid=$(cat "$file")
  if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for ((i = 0; i < 30; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$file"
}
