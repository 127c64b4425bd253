#!/usr/bin/env bash
# Stop the one-node cluster started by cluster-up.sh: every process by its pid, the pods'
# containers, the Docker engine; then flush iptables, remove docker0 and the run folder (certs,
# etcd data, logs). The Kubernetes build and the Docker images stay cached. Idempotent.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

PIDS="$K8S_RUN/pids"
for name in kubelet kube-scheduler kube-controller-manager kube-apiserver etcd; do
  if [[ -f "$PIDS/$name.pid" ]]; then
    log "stopping $name (pid $(cat "$PIDS/$name.pid"))"
    stop_pidfile "$PIDS/$name.pid"
  fi
done
# Pod containers (names k8s_*) go with the engine: docker-down.sh removes every container.
"$HERE/docker-down.sh"
# The kubelet's shared root dir and whatever volumes it left mounted below it.
if [[ -d "$K8S_RUN" ]]; then
  grep -o " $K8S_RUN[^ ]*" /proc/mounts 2>/dev/null | sort -r | while read -r m; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done || true
  rm -rf "$K8S_RUN"
fi
log "cluster down"
