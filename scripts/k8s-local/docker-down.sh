#!/usr/bin/env bash
# Stop the private Docker engine by its pid and undo what it changed on the host: the DOCKER
# iptables chains, the FORWARD policy and the docker0 bridge. Images stay under $DOCKER_ROOT.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

export DOCKER_HOST="unix://$DOCKER_SOCK"
if [[ -f "$DOCKER_RUN/dockerd.pid" ]]; then
  # Containers first (kubelet's pods would otherwise outlive the engine as orphaned shims).
  ids=$(docker ps -q 2>/dev/null || true)
  [[ -z "$ids" ]] || docker rm -f $ids >/dev/null 2>&1 || true
  log "stopping dockerd (pid $(cat "$DOCKER_RUN/dockerd.pid"))"
  stop_pidfile "$DOCKER_RUN/dockerd.pid"
fi
# containerd started by dockerd exits with it; make sure nothing of ours is left.
if [[ -f "$DOCKER_RUN/exec/containerd/containerd.pid" ]]; then
  stop_pidfile "$DOCKER_RUN/exec/containerd/containerd.pid"
fi
for table in filter nat mangle; do
  iptables -t "$table" -F 2>/dev/null || true
  iptables -t "$table" -X 2>/dev/null || true
done
iptables -P FORWARD ACCEPT 2>/dev/null || true
# Put back whatever rules the host had before dockerd started (saved by docker-up.sh).
if [[ -s "$DOCKER_RUN/iptables.before" ]]; then
  iptables-restore <"$DOCKER_RUN/iptables.before" || log "WARNING: iptables-restore failed"
fi
rm -f "$DOCKER_RUN/iptables.before"
ip link del docker0 2>/dev/null || true
rm -f "$DOCKER_SOCK" "$DOCKER_RUN/dockerd.self.pid"
# dockerd bind-mounts its data root (and overlay layers below it); undo what a crash left.
grep -o " $DOCKER_ROOT[^ ]*" /proc/mounts 2>/dev/null | sort -r | while read -r m; do umount "$m" 2>/dev/null || true; done || true
grep -o " $DOCKER_RUN[^ ]*" /proc/mounts 2>/dev/null | sort -r | while read -r m; do umount "$m" 2>/dev/null || true; done || true
log "dockerd stopped, iptables flushed, docker0 removed"
