#!/usr/bin/env bash
# Start a one-node Kubernetes 1.20.2 on 127.0.0.1: etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler and a kubelet on the private Docker engine (dockershim), with the workarounds of
# scripts/k8s-local/README.md. Needs build.sh first. Idempotent: a running cluster is left as it is.
# Prints the KUBECONFIG path on stdout. Stop everything with cluster-down.sh.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

APISERVER_PORT=${DRIFTLOOP_K8S_APISERVER_PORT:-16443}
ETCD_PORT=${DRIFTLOOP_K8S_ETCD_PORT:-23790}
KUBECONFIG_FILE="$K8S_RUN/kubeconfig"
KUBECTL="$K8S_BIN/kubectl --kubeconfig $KUBECONFIG_FILE"
PIDS="$K8S_RUN/pids"
[[ -x "$K8S_BIN/kubelet" ]] || die "no kubernetes build in $K8S_BIN: run scripts/k8s-local/build.sh"
mkdir -p "$K8S_RUN" "$PIDS"

running() { [[ -f "$PIDS/$1.pid" ]] && kill -0 "$(cat "$PIDS/$1.pid")" 2>/dev/null; }

# start NAME COMMAND...: run in the background (own session), log and pid under $K8S_RUN.
start() {
  local name=$1; shift
  if running "$name"; then log "$name already running"; return 0; fi
  log "starting $name"
  setsid "$@" >"$K8S_RUN/$name.log" 2>&1 </dev/null &
  echo $! >"$PIDS/$name.pid"
}

# 0. The Docker engine (with the runtime wrapper) and the pause image (workaround 1).
env_line=$("$HERE/docker-up.sh") || die "could not start the Docker engine"
eval "$env_line"
if ! docker image inspect k8s.gcr.io/pause:3.2 >/dev/null 2>&1; then
  tmp=$(mktemp -d)
  cp "$K8S_BIN/pause" "$tmp/pause"
  tar -C "$tmp" -c pause | docker import --change 'ENTRYPOINT ["/pause"]' - k8s.gcr.io/pause:3.2 >/dev/null
  rm -rf "$tmp"
  log "imported k8s.gcr.io/pause:3.2 from the tree's pause.c"
fi

# 1. PKI: a CA, the apiserver's serving certificate (SAN 127.0.0.1), a service-account key pair
#    and a static token with system:masters for kubectl and the control-plane components.
PKI="$K8S_RUN/pki"
if [[ ! -f "$PKI/token.csv" ]]; then
  mkdir -p "$PKI"
  (
    cd "$PKI"
    openssl req -x509 -newkey rsa:2048 -nodes -days 7 -keyout ca.key -out ca.crt \
      -subj "/CN=driftloop-local-ca" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -keyout apiserver.key -out apiserver.csr \
      -subj "/CN=kube-apiserver" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc\n' >san.ext
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 7 \
      -extfile san.ext -out apiserver.crt 2>/dev/null
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
    echo "$(openssl rand -hex 24),admin,admin,system:masters" >token.csv
    chmod 600 ./*.key token.csv
  )
fi
TOKEN=$(cut -d, -f1 "$PKI/token.csv")
cat >"$KUBECONFIG_FILE" <<KC
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster: {server: "https://127.0.0.1:$APISERVER_PORT", certificate-authority: "$PKI/ca.crt"}
users:
- name: admin
  user: {token: "$TOKEN"}
contexts:
- name: local
  context: {cluster: local, user: admin, namespace: default}
current-context: local
KC
chmod 600 "$KUBECONFIG_FILE"

# 2. etcd (Debian's 3.4), client and peer on 127.0.0.1 only.
start etcd etcd --name local --data-dir "$K8S_RUN/etcd" \
  --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls "http://127.0.0.1:$((ETCD_PORT + 10))" \
  --initial-advertise-peer-urls "http://127.0.0.1:$((ETCD_PORT + 10))" \
  --initial-cluster "local=http://127.0.0.1:$((ETCD_PORT + 10))" --log-level warn
wait_for 60 etcd curl -sf "http://127.0.0.1:$ETCD_PORT/health"

# 3. kube-apiserver: no endpoint reconciler (the advertise address is loopback), kubelet by name.
start kube-apiserver "$K8S_BIN/kube-apiserver" \
  --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
  --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$APISERVER_PORT" \
  --insecure-port 0 \
  --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
  --client-ca-file "$PKI/ca.crt" --token-auth-file "$PKI/token.csv" \
  --authorization-mode Node,RBAC --endpoint-reconciler-type none \
  --kubelet-preferred-address-types Hostname \
  --service-cluster-ip-range 10.0.0.0/24 \
  --service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
  --service-account-issuer https://kubernetes.default.svc \
  --allow-privileged=false --profiling=false
wait_for 120 kube-apiserver $KUBECTL get --raw /readyz

# 4. controller-manager (no node IPAM, routes, service LB or cloud node lifecycle) and scheduler.
start kube-controller-manager "$K8S_BIN/kube-controller-manager" \
  --kubeconfig "$KUBECONFIG_FILE" --bind-address 127.0.0.1 --port 0 \
  --controllers '*,-nodeipam,-route,-service,-cloud-node-lifecycle' --leader-elect=false \
  --service-account-private-key-file "$PKI/sa.key" --root-ca-file "$PKI/ca.crt" \
  --use-service-account-credentials=false --profiling=false
start kube-scheduler "$K8S_BIN/kube-scheduler" \
  --kubeconfig "$KUBECONFIG_FILE" --bind-address 127.0.0.1 --port 0 --leader-elect=false \
  --profiling=false

# 5. kubelet (workaround 3): in its own mount namespace, with files holding the sysctl values it
#    insists on bind-mounted over /proc/sys (it cannot write them here). Its root dir is a shared
#    bind mount, so the volumes it mounts (tmpfs for secrets and tokens) reach the Docker engine.
KROOT="$K8S_RUN/kubelet"
if ! running kubelet; then
  mkdir -p "$KROOT" "$K8S_RUN/sysctl"
  if ! grep -q " $KROOT " /proc/mounts; then
    mount --bind "$KROOT" "$KROOT"
    mount --make-rshared "$KROOT"
  fi
  printf '10\n' >"$K8S_RUN/sysctl/kernel.panic"
  printf '1\n' >"$K8S_RUN/sysctl/kernel.panic_on_oops"
  printf '1\n' >"$K8S_RUN/sysctl/vm.overcommit_memory"
  printf '0\n' >"$K8S_RUN/sysctl/vm.panic_on_oom"
  cat >"$K8S_RUN/kubelet.sh" <<KL
#!/bin/sh
set -e
mount --make-rprivate /proc
for f in kernel.panic kernel.panic_on_oops vm.overcommit_memory vm.panic_on_oom; do
  mount --bind "$K8S_RUN/sysctl/\$f" "/proc/sys/\$(echo "\$f" | tr . /)"
done
exec "$K8S_BIN/kubelet" --kubeconfig "$KUBECONFIG_FILE" \\
  --container-runtime docker --docker-endpoint "unix://$DOCKER_SOCK" \\
  --pod-infra-container-image k8s.gcr.io/pause:3.2 \\
  --cgroup-driver cgroupfs --fail-swap-on=false --hostname-override localhost \\
  --address 127.0.0.1 --healthz-bind-address 127.0.0.1 --read-only-port 0 \\
  --root-dir "$KROOT" --cert-dir "$K8S_RUN/kubelet-pki" \\
  --eviction-hard '' --image-gc-high-threshold 100 --image-gc-low-threshold 99 \\
  --serialize-image-pulls=false --max-pods 40
KL
  chmod +x "$K8S_RUN/kubelet.sh"
fi
start kubelet unshare -m --propagation unchanged "$K8S_RUN/kubelet.sh"
wait_for 120 "node localhost Ready" sh -c \
  "$KUBECTL get node localhost -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}' | grep -q True"
wait_for 60 "default service account" $KUBECTL -n default get serviceaccount default
log "cluster up: $($KUBECTL get node localhost --no-headers)"
echo "$KUBECONFIG_FILE"
