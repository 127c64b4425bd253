#!/usr/bin/env bash
# driftloop on a local kind cluster (needs Docker, kind, kubectl and helm on PATH; helm can come
# from scripts/helm-tools.sh).
#
#   scripts/kind.sh up     create the cluster (docker/kind-config.yaml), build the images
#                          (scripts/images.sh), load them into the nodes, install the chart
#   scripts/kind.sh down   uninstall the chart and delete the cluster
#
# Environment: CLUSTER (driftloop), NAMESPACE (driftloop), RELEASE (driftloop), TAG (dev),
# SKIP_BUILD=1 (use images already built), VALUES (extra values file; a relative path is taken
# from the current folder), HELM_TIMEOUT (10m).
set -euo pipefail
# VALUES names a file relative to where the script was started, not to the repository root.
if [[ -n "${VALUES:-}" && "$VALUES" != /* ]]; then VALUES="$PWD/$VALUES"; fi
cd "$(dirname "${BASH_SOURCE[0]}")/.."
CLUSTER=${CLUSTER:-driftloop}
NAMESPACE=${NAMESPACE:-driftloop}
RELEASE=${RELEASE:-driftloop}
TAG=${TAG:-dev}
HELM_TIMEOUT=${HELM_TIMEOUT:-10m}
CHART=helm/driftloop

log() { printf '[kind %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
need() { command -v "$1" >/dev/null || die "$1 not found on PATH ($2)"; }
# The helm on PATH, else the pinned one scripts/helm-tools.sh installs (it prints the path of
# the binary as its last line: .venv/bin/helm, or .tools/bin/helm without a virtualenv).
helm_bin() {
  if command -v helm >/dev/null; then command -v helm; return; fi
  local out
  out=$(scripts/helm-tools.sh) || die "no helm on PATH and scripts/helm-tools.sh failed"
  out=${out##*$'\n'}
  [[ -x "$out" ]] || die "scripts/helm-tools.sh did not install helm (it printed '$out')"
  echo "$out"
}
# Whether kind knows cluster $CLUSTER. The list is read in full first: `kind get clusters |
# grep -q` under pipefail fails when grep exits at the first match before kind has written all
# its output (SIGPIPE), and the cluster would then be created a second time.
has_cluster() {
  local clusters
  clusters=$(kind get clusters 2>/dev/null) || clusters=""
  grep -qxF -- "$CLUSTER" <<<"$clusters"
}

up() {
  need docker "https://docs.docker.com/engine/install/"
  need kind "https://kind.sigs.k8s.io/docs/user/quick-start/#installation"
  need kubectl "https://kubernetes.io/docs/tasks/tools/"
  if [[ -n "${VALUES:-}" && ! -f "$VALUES" ]]; then die "VALUES file $VALUES not found"; fi
  local helm
  helm=$(helm_bin)
  if has_cluster; then
    log "kind cluster $CLUSTER exists"
  else
    log "creating kind cluster $CLUSTER"
    kind create cluster --name "$CLUSTER" --config docker/kind-config.yaml --wait 120s
  fi
  kubectl config use-context "kind-$CLUSTER" >/dev/null
  if [[ "${SKIP_BUILD:-0}" != 1 ]]; then TAG=$TAG scripts/images.sh; fi
  log "loading images into the nodes"
  kind load docker-image --name "$CLUSTER" "driftloop-platform:$TAG" "driftloop-serving:$TAG"
  local values=()
  values+=(-f "$CHART/ci/minimal-kind-values.yaml")
  [[ -n "${VALUES:-}" ]] && values+=(-f "$VALUES")
  log "installing the chart (release $RELEASE, namespace $NAMESPACE)"
  "$helm" upgrade --install "$RELEASE" "$CHART" --namespace "$NAMESPACE" --create-namespace \
    "${values[@]}" \
    --set "image.platform.tag=$TAG,image.platform.pullPolicy=Never" \
    --set "image.serving.tag=$TAG,image.serving.pullPolicy=Never" \
    --wait --timeout "$HELM_TIMEOUT"
  kubectl -n "$NAMESPACE" get pods
  cat >&2 <<MSG

driftloop runs on kind cluster $CLUSTER. Reach the services with port-forwards, e.g.:
  kubectl -n $NAMESPACE port-forward svc/$RELEASE-serving 8000:8000
  kubectl -n $NAMESPACE port-forward svc/$RELEASE-mlflow 5000:5000
  kubectl -n $NAMESPACE port-forward svc/$RELEASE-prefect-server 4200:4200
Check it with: $helm test $RELEASE -n $NAMESPACE     Remove it with: make kind-down
MSG
}

down() {
  need kind "https://kind.sigs.k8s.io/docs/user/quick-start/#installation"
  if ! has_cluster; then
    log "no kind cluster $CLUSTER"
    return 0
  fi
  local helm
  helm=$(helm_bin)
  "$helm" uninstall "$RELEASE" --namespace "$NAMESPACE" --kube-context "kind-$CLUSTER" --wait \
    2>/dev/null || true
  kind delete cluster --name "$CLUSTER"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
