#!/usr/bin/env bash
# The one-node Kubernetes end-to-end check (`make k8s-e2e`; not part of `make test`):
#   build Kubernetes 1.20.2 (cached) -> start the cluster -> images in the node's Docker engine
#   -> seed a registry with a champion -> helm install --wait -> every Deployment rolled out and
#   every pod Ready -> checks from inside the pods -> helm test -> helm upgrade to a new serving
#   image tag while counting ready serving pods (never below 1) -> helm uninstall -> teardown.
# Idempotent; tears everything down on exit (KEEP_CLUSTER=1 leaves the cluster running).
# Nothing here sends traffic to pod or node addresses: every check runs inside a pod on 127.0.0.1.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

NS=${DRIFTLOOP_K8S_NAMESPACE:-driftloop-e2e}
RELEASE=driftloop
TAG=${TAG:-dev}
TAG2=${TAG2:-dev2}
VALUES="$HERE/values-k8s-local.yaml"
CHART="$REPO_ROOT/helm/driftloop"
HELM_TIMEOUT=${HELM_TIMEOUT:-6m}
declare -a STEPS=()
t0=$SECONDS
step_start=$SECONDS
step() { # close the previous step and open the next one
  local now=$SECONDS
  [[ -z "${current:-}" ]] || STEPS+=("$(printf '%-44s %5ss' "$current" $((now - step_start)))")
  current=$1
  step_start=$now
  log "== $1"
}
summary() {
  step ""
  log "timing summary:"
  local s
  for s in "${STEPS[@]}"; do printf '  %s\n' "$s" >&2; done
  printf '  %-44s %5ss\n' "total" $((SECONDS - t0)) >&2
}
finish() {
  local rc=$?
  set +e
  [[ -z "${poller:-}" ]] || kill "$poller" 2>/dev/null
  if ((rc != 0)) && [[ -n "${KUBECTL:-}" ]]; then
    log "FAILED (exit $rc): state of namespace $NS"
    $KUBECTL -n "$NS" get all,pvc,events 2>&1 | tail -40 >&2
  fi
  if [[ "${KEEP_CLUSTER:-0}" != 1 ]]; then
    step "teardown (cluster-down)"
    "$HERE/cluster-down.sh"
  fi
  summary
  ((rc == 0)) && log "k8s-e2e PASSED" || log "k8s-e2e FAILED"
  exit "$rc"
}
trap finish EXIT

[[ -f "$CHART/Chart.yaml" ]] || die "chart not found at $CHART"

step "build kubernetes $K8S_VERSION (cached)"
nice -n 10 "$HERE/build.sh"

step "cluster up"
KUBECONFIG_FILE=$("$HERE/cluster-up.sh" | tail -n 1)
export KUBECONFIG="$KUBECONFIG_FILE"
KUBECTL="$K8S_BIN/kubectl"
export DOCKER_HOST="unix://$DOCKER_SOCK"

step "images in the node's Docker engine"
# The node's kubelet runs on the same private engine the images are built in, so building there
# is loading them. Build when missing (base from debootstrap: nothing can be pulled here).
if ! docker image inspect "driftloop-platform:$TAG" "driftloop-serving:$TAG" >/dev/null 2>&1; then
  TAG=$TAG BASE_IMAGE=${BASE_IMAGE:-driftloop-base:local} SMOKE=0 "$REPO_ROOT/scripts/images.sh"
fi
docker tag "driftloop-serving:$TAG" "driftloop-serving:$TAG2"
docker images --format '  {{.Repository}}:{{.Tag}}  {{.Size}}' | grep -E 'driftloop|pause' >&2

step "helm binary"
export HELM_TOOLS_BIN="$K8S_CACHE/helm-bin"
[[ -x "$HELM_TOOLS_BIN/helm" ]] || "$REPO_ROOT/scripts/helm-tools.sh" >/dev/null
HELM="$HELM_TOOLS_BIN/helm"
"$HELM" version --short >&2

step "namespace, state volume, seeded registry"
$KUBECTL create namespace "$NS" --dry-run=client -o yaml | $KUBECTL apply -f - >/dev/null
$KUBECTL -n "$NS" create secret generic driftloop-k8s-local-redis \
  --from-literal=password="$(openssl rand -hex 16)" --dry-run=client -o yaml | $KUBECTL apply -f - >/dev/null
STATE="$K8S_RUN/state"
mkdir -p "$STATE"
chown 10001:10001 "$STATE"
$KUBECTL apply -f - >/dev/null <<YAML
apiVersion: v1
kind: PersistentVolume
metadata: {name: driftloop-k8s-local-state}
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteMany]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: ""
  hostPath: {path: "$STATE", type: Directory}
  claimRef: {namespace: $NS, name: driftloop-k8s-local-state}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: driftloop-k8s-local-state, namespace: $NS}
spec:
  accessModes: [ReadWriteMany]
  storageClassName: ""
  volumeName: driftloop-k8s-local-state
  resources: {requests: {storage: 1Gi}}
YAML
$KUBECTL -n "$NS" create configmap driftloop-k8s-local-seed --from-file="$HERE/seed-champion.py" \
  --dry-run=client -o yaml | $KUBECTL apply -f - >/dev/null
$KUBECTL -n "$NS" delete pod driftloop-k8s-local-seed --ignore-not-found >/dev/null
$KUBECTL -n "$NS" apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Pod
metadata: {name: driftloop-k8s-local-seed}
spec:
  restartPolicy: Never
  automountServiceAccountToken: false
  securityContext: {runAsNonRoot: true, runAsUser: 10001, runAsGroup: 10001}
  containers:
    - name: seed
      image: driftloop-platform:$TAG
      imagePullPolicy: Never
      command: [python, /seed/seed-champion.py, /var/lib/driftloop/mlflow]
      env: [{name: HOME, value: /tmp}, {name: MLFLOW_DISABLE_TELEMETRY, value: "true"}]
      securityContext:
        allowPrivilegeEscalation: false
        readOnlyRootFilesystem: true
        capabilities: {drop: [ALL]}
      volumeMounts:
        - {name: seed, mountPath: /seed}
        - {name: state, mountPath: /var/lib/driftloop}
        - {name: tmp, mountPath: /tmp}
  volumes:
    - {name: seed, configMap: {name: driftloop-k8s-local-seed}}
    - {name: state, persistentVolumeClaim: {claimName: driftloop-k8s-local-state}}
    - {name: tmp, emptyDir: {}}
YAML
pod_phase() { $KUBECTL -n "$NS" get pod "$1" -o jsonpath='{.status.phase}'; }
for _ in $(seq 1 180); do
  phase=$(pod_phase driftloop-k8s-local-seed)
  [[ "$phase" == Succeeded || "$phase" == Failed ]] && break
  sleep 1
done
$KUBECTL -n "$NS" logs driftloop-k8s-local-seed | tail -3 >&2
[[ "$phase" == Succeeded ]] || die "seeding the registry failed (pod phase: $phase)"

step "helm install --wait"
"$HELM" uninstall "$RELEASE" -n "$NS" --wait >/dev/null 2>&1 || true
"$HELM" install "$RELEASE" "$CHART" -n "$NS" -f "$VALUES" \
  --set "image.platform.tag=$TAG,image.serving.tag=$TAG" --wait --timeout "$HELM_TIMEOUT" >&2

step "rolled out, pods Ready, checks inside pods"
for d in $($KUBECTL -n "$NS" get deployments -o name); do
  $KUBECTL -n "$NS" rollout status "$d" --timeout 300s >&2
done
$KUBECTL -n "$NS" wait --for=condition=Ready pod -l "app.kubernetes.io/instance=$RELEASE" \
  --timeout 300s >&2
$KUBECTL -n "$NS" get pods -o wide >&2
SERVING_SELECTOR="app.kubernetes.io/instance=$RELEASE,app.kubernetes.io/component=serving"
serving_pod=$($KUBECTL -n "$NS" get pod -l "$SERVING_SELECTOR" -o jsonpath='{.items[0].metadata.name}')
[[ -n "$serving_pod" ]] || die "no serving pod found with labels $SERVING_SELECTOR"
# shellcheck disable=SC2016
$KUBECTL -n "$NS" exec "$serving_pod" -- python -c '
import json, os, urllib.request
base = "http://127.0.0.1:%s" % os.environ["DRIFTLOOP_SERVING__PORT"]
for path in ("/v2/health/live", "/v2/health/ready"):
    with urllib.request.urlopen(base + path, timeout=5) as r:
        print(path, r.status, r.read().decode()[:200])
ready = json.load(urllib.request.urlopen(base + "/v2/health/ready", timeout=5))
assert ready["status"] == "ready" and ready["champion"], ready
' >&2

step "helm test"
# No --logs: helm would also ask for logs of the test ServiceAccount hook (not a pod) and fail.
"$HELM" test "$RELEASE" -n "$NS" --timeout 5m --filter "!name=$RELEASE-test-services" >&2
$KUBECTL -n "$NS" logs "$RELEASE-test-serving-selfcheck" >&2

step "helm upgrade (serving :$TAG -> :$TAG2), >= 1 ready pod"
ready_log="$K8S_RUN/serving-ready.log"
: >"$ready_log"
serving_deploy=$($KUBECTL -n "$NS" get deployment -l "$SERVING_SELECTOR" -o jsonpath='{.items[0].metadata.name}')
(
  while true; do
    # A sample only when the API answered; an absent readyReplicas means 0.
    if v=$($KUBECTL -n "$NS" get deployment "$serving_deploy" -o jsonpath='{.status.readyReplicas}' 2>/dev/null); then
      echo "${v:-0}" >>"$ready_log"
    fi
    sleep 0.5
  done
) &
poller=$!
"$HELM" upgrade "$RELEASE" "$CHART" -n "$NS" -f "$VALUES" \
  --set "image.platform.tag=$TAG,image.serving.tag=$TAG2" --wait --timeout "$HELM_TIMEOUT" >&2
$KUBECTL -n "$NS" rollout status "deployment/$serving_deploy" --timeout 300s >&2
kill "$poller"; wait "$poller" 2>/dev/null || true; poller=""
samples=$(grep -c '' "$ready_log")
min_ready=$(awk 'BEGIN{m=-1} {if (m<0 || $1<m) m=$1} END{print m}' "$ready_log")
log "readyReplicas during the upgrade: min $min_ready over $samples samples"
((samples > 0 && min_ready >= 1)) || die "the serving Deployment had $min_ready ready pods during the upgrade"
# Old pods may still be terminating (grace period) right after the rollout: wait for them to go.
for _ in $(seq 1 90); do
  images=$($KUBECTL -n "$NS" get pods -l "$SERVING_SELECTOR" \
    -o jsonpath='{range .items[*]}{.spec.containers[0].image}{"\n"}{end}' | sort -u)
  [[ "$images" == "driftloop-serving:$TAG2" ]] && break
  sleep 1
done
log "serving pods now run: $(echo "$images" | tr '\n' ' ')"
[[ "$images" == "driftloop-serving:$TAG2" ]] || die "serving pods do not all run driftloop-serving:$TAG2"

step "helm uninstall"
"$HELM" uninstall "$RELEASE" -n "$NS" --wait --timeout 3m >&2
$KUBECTL delete namespace "$NS" --wait=true --timeout 120s >/dev/null
$KUBECTL delete pv driftloop-k8s-local-state --ignore-not-found >/dev/null
