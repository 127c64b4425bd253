#!/usr/bin/env bash
# Start a private Docker engine (data under $K8S_CACHE/docker, socket $K8S_CACHE/dockerd/docker.sock)
# with the oom_score_adj-clamping runtime wrapper as default runtime. Idempotent: a running one is
# reused. Prints `export DOCKER_HOST=...` for the caller to eval (and
# DRIFTLOOP_DOCKER_STARTED=1 when this call started the engine). Stop it with docker-down.sh.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

command -v dockerd >/dev/null || die "dockerd not found: apt-get install docker.io"
command -v jq >/dev/null || die "jq not found (the runtime wrapper needs it): apt-get install jq"
mkdir -p "$DOCKER_ROOT" "$DOCKER_RUN"
export DOCKER_HOST="unix://$DOCKER_SOCK"
if [[ -f "$DOCKER_RUN/dockerd.pid" ]] && kill -0 "$(cat "$DOCKER_RUN/dockerd.pid")" 2>/dev/null \
  && docker info >/dev/null 2>&1; then
  log "dockerd already running (pid $(cat "$DOCKER_RUN/dockerd.pid"))"
else
  rm -f "$DOCKER_RUN/dockerd.pid" "$DOCKER_RUN/dockerd.self.pid" "$DOCKER_SOCK"
  # dockerd (and later kubelet) add iptables rules: keep the host's rules to restore on stop.
  [[ -f "$DOCKER_RUN/iptables.before" ]] || iptables-save >"$DOCKER_RUN/iptables.before"
  log "starting dockerd (data root $DOCKER_ROOT, log $DOCKER_RUN/dockerd.log)"
  # setsid: its own session, so the caller's job control never signals it; stopped by pid.
  setsid dockerd \
    --data-root "$DOCKER_ROOT" \
    --exec-root "$DOCKER_RUN/exec" \
    --pidfile "$DOCKER_RUN/dockerd.self.pid" \
    --host "$DOCKER_HOST" \
    --storage-driver overlay2 \
    --exec-opt native.cgroupdriver=cgroupfs \
    --add-runtime "wrapped=$HERE/runc-wrapper.sh" \
    --default-runtime wrapped \
    >"$DOCKER_RUN/dockerd.log" 2>&1 </dev/null &
  echo $! >"$DOCKER_RUN/dockerd.pid"
  wait_for 60 "dockerd" docker info
  log "dockerd up (pid $(cat "$DOCKER_RUN/dockerd.pid"))"
  echo "DRIFTLOOP_DOCKER_STARTED=1"
fi
echo "export DOCKER_HOST=$DOCKER_HOST"
