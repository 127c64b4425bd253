#!/usr/bin/env bash
# The one-node Kubernetes end-to-end check (`make k8s-e2e`; not part of `make test`): the WHOLE
# platform live on a real Kubernetes 1.20.2 built from Debian's source, and the loop running in it.
#   build (cached) -> cluster up -> images (platform, serving, PostgreSQL, Redis; cached)
#   -> hostPath volumes -> helm install --wait (values-k8s-local.yaml: hostNetwork test mode, every
#   server on its own 127.0.0.1 port) -> rolled out -> helm test (every component, from pods)
#   -> loop.py: ingest/features/train deployments as Jobs -> champion served -> a month of traffic
#   and labels while a serving pod is deleted -> monitor Job -> drift event -> automation ->
#   retrain Job -> canary fed with labelled traffic -> promote or roll back, read back from MLflow,
#   the ledger and the audit log -> helm upgrade (ready serving pods never below 1)
#   -> helm uninstall (no pod or Job left; claims kept by policy) -> teardown -> nothing left.
# Prints the time of each phase, the platform's memory (sum over containers, from the Docker
# engine) and the loop's outcome. KEEP_CLUSTER=1 leaves the cluster running.
# Traffic goes only to 127.0.0.1: the pods share the node's network namespace (hostNetwork).
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

NS=${DRIFTLOOP_K8S_NAMESPACE:-driftloop-e2e}
APISERVER_PORT=${DRIFTLOOP_K8S_APISERVER_PORT:-16443}
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
memory_report() { # peak and mean of the sum over containers, and each component's peak
  [[ -s "${MEM_LOG:-}" ]] || return 0
  "$REPO_ROOT/.venv/bin/python" - "$MEM_LOG" <<'PY' | tee "$K8S_CACHE/last-memory.txt" >&2
import collections, re, sys
samples = collections.defaultdict(dict)  # epoch -> {container name: MiB}
for line in open(sys.argv[1]):
    parts = line.split()
    if len(parts) == 3:
        samples[parts[0]][parts[1]] = float(parts[2])
if not samples:
    sys.exit(0)
totals = {t: sum(c.values()) for t, c in samples.items()}
peak_t = max(totals, key=totals.get)
print(f"memory of the running platform (docker stats, sum over containers): peak "
      f"{totals[peak_t]:.0f} MiB ({len(samples[peak_t])} containers), mean "
      f"{sum(totals.values()) / len(totals):.0f} MiB over {len(totals)} samples")
def component(name):  # k8s_<container>_<pod>_<namespace>_<uid>_<attempt>
    bits = name.split("_")
    if len(bits) < 3 or bits[0] != "k8s":
        return name
    container, pod = bits[1], bits[2]
    if container == "POD":
        return "pause (pod sandboxes)"
    if container == "prefect-job":  # flow runs started by the worker, named after the run
        return "flow-run Jobs/prefect-job"
    pod = re.sub(r"-[a-z0-9]{8,10}-[a-z0-9]{5}$", "", pod)  # Deployment pod
    pod = re.sub(r"-[0-9]+-[a-z0-9]{5}$", "", pod)  # revisioned Job pod
    pod = re.sub(r"-[a-z0-9]{5}$", "", pod)  # Job pod
    return f"{pod}/{container}"
peak = collections.defaultdict(float)
for t, c in samples.items():
    per = collections.defaultdict(float)
    for name, mib in c.items():
        per[component(name)] = max(per[component(name)], mib)  # one replica's peak
    for k, v in per.items():
        peak[k] = max(peak[k], v)
print("peak per container (one replica; MiB):")
for k, v in sorted(peak.items(), key=lambda kv: -kv[1]):
    print(f"  {v:7.0f}  {k}")
PY
}
loop_report() {
  [[ -s "${LOOP_SUMMARY:-}" ]] || return 0
  "$REPO_ROOT/.venv/bin/python" - "$LOOP_SUMMARY" >&2 <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
print("loop outcome:")
fc = s.get("first_champion", {})
print(f"  first champion v{fc.get('version')} served {fc.get('s_since_install')} s after helm install")
for m in s.get("months", []):
    r = m.get("retrain", {})
    print(f"  {m['month']}: {m['requests']} requests acknowledged (all captured; pod deleted: {m.get('deleted_pod') or 'no'});"
          f" retrain {r.get('status')} -> {r.get('rollout', '-')} v{r.get('version', '?')}: {str(r.get('rollout_reason') or r.get('reason') or '')[:160]}")
fp = s.get("first_promotion")
print(f"  first canary promotion: {fp['s_since_install']} s after helm install (v{fp['version']}, {fp['month']})" if fp else "  no canary promotion")
print(f"  registry: {s.get('registry')}; audit chain {s.get('audit_chain')}")
for a in s.get("audit", [])[-4:]:
    print(f"    audit {a.get('at')} {a.get('action')} by {a.get('actor')}: {str(a.get('reason'))[:100]}")
print("  loop phases: " + ", ".join(f"{n} {t:.0f}s" for n, t in s.get("phases", [])))
PY
}
leftovers() { # after teardown: no process, container, mount or iptables rule of ours
  local bad=0
  if pgrep -f "$K8S_CACHE/bin/|dockerd --data-root $DOCKER_ROOT|etcd --name local" >/dev/null; then
    log "left running: $(pgrep -af "$K8S_CACHE/bin/|dockerd --data-root|etcd --name local" | head -5)"; bad=1
  fi
  if grep -qE " ($K8S_CACHE|${VOLUMES:-/nonexistent})" /proc/mounts; then
    log "left mounted: $(grep -E " ($K8S_CACHE|${VOLUMES:-/nonexistent})" /proc/mounts | head -3)"; bad=1
  fi
  if iptables-save 2>/dev/null | grep -qiE 'DOCKER|KUBE'; then log "iptables rules left"; bad=1; fi
  if ip link show docker0 >/dev/null 2>&1; then log "docker0 left"; bad=1; fi
  ((bad == 0)) && log "teardown check: no process, container, mount, iptables rule or bridge left"
  return $bad
}
finish() {
  local rc=$?
  set +e
  [[ -z "${poller:-}" ]] || kill "$poller" 2>/dev/null
  [[ -z "${sampler:-}" ]] || kill "$sampler" 2>/dev/null
  if ((rc != 0)) && [[ -n "${KUBECTL:-}" ]]; then
    log "FAILED (exit $rc): state of namespace $NS"
    $KUBECTL -n "$NS" get all,pvc,events 2>&1 | tail -40 >&2
  fi
  if [[ -n "${LOOP_SUMMARY:-}" && -s "$LOOP_SUMMARY" ]]; then
    cp "$LOOP_SUMMARY" "$K8S_CACHE/last-loop-summary.json"
    LOOP_SUMMARY="$K8S_CACHE/last-loop-summary.json"
  else
    LOOP_SUMMARY=""
  fi
  # The memory log lives in the run folder, which teardown removes: report it first.
  memory_report
  # The driver's token and credentials never outlive the run.
  rm -rf "${DRIVER_HOME:-/nonexistent-driftloop}"
  if [[ "${KEEP_CLUSTER:-0}" != 1 ]]; then
    step "teardown (cluster-down)"
    "$HERE/cluster-down.sh"
    rm -rf "${VOLUMES:-/nonexistent-driftloop}"
    leftovers || rc=1
  fi
  summary
  loop_report
  ((rc == 0)) && log "k8s-e2e PASSED" || log "k8s-e2e FAILED"
  exit "$rc"
}
trap finish EXIT
# Interrupted or killed: exit non-zero so finish() reports a failure (rc would read 0).
trap 'exit 130' INT
trap 'exit 143' TERM

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

step "images for PostgreSQL and Redis (Debian packages on the same base)"
"$HERE/db-images.sh"

step "namespace and volumes"
# Outside $HOME (root's, mode 0700): the loop driver reads the state volume as uid 10001.
VOLUMES=${DRIFTLOOP_K8S_VOLUMES:-/var/tmp/driftloop-k8s-e2e}
STATE="$VOLUMES/state"
# E2E_RESUME=1 (with KEEP_CLUSTER=1 before): run the loop again on the release left installed.
if [[ "${E2E_RESUME:-0}" != 1 ]]; then
# A clean start when a kept cluster still holds an earlier run (KEEP_CLUSTER=1).
"$HELM" uninstall "$RELEASE" -n "$NS" --no-hooks --wait >/dev/null 2>&1 || true
$KUBECTL delete namespace "$NS" --ignore-not-found --wait=true --timeout 180s >/dev/null
$KUBECTL delete pv -l driftloop.io/e2e=true --ignore-not-found --wait=true >/dev/null
$KUBECTL create namespace "$NS" --dry-run=client -o yaml | $KUBECTL apply -f - >/dev/null
# No dynamic provisioner here: a hostPath PersistentVolume per claim of the chart, pre-bound by
# claimRef, owned by the uid that writes it (hostPath ignores fsGroup).
rm -rf "$VOLUMES"
mkdir -p "$VOLUMES"
pv() { # NAME CLAIM UID SIZE
  mkdir -p "$VOLUMES/$1"
  chown "$3:$3" "$VOLUMES/$1"
  chmod 0700 "$VOLUMES/$1"
  $KUBECTL apply -f - >/dev/null <<YAML
apiVersion: v1
kind: PersistentVolume
metadata: {name: $NS-$1, labels: {driftloop.io/e2e: "true"}}
spec:
  capacity: {storage: $4}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: driftloop-local
  hostPath: {path: "$VOLUMES/$1", type: Directory}
  claimRef: {namespace: $NS, name: $2}
YAML
}
pv state "$RELEASE-state" 10001 2Gi
pv mlflow-artifacts "$RELEASE-mlflow-artifacts" 10001 2Gi
pv postgresql "data-$RELEASE-postgresql-0" 999 1Gi

fi
step "memory sampler (docker stats, every 5 s)"
MEM_LOG="$K8S_RUN/memory.log"
: >"$MEM_LOG"
(
  while true; do
    # Each container's memory as the engine reports it (usage minus page cache: RSS and kernel
    # memory of the processes), one line per container and sample: epoch name MiB.
    docker stats --no-stream --format '{{.Name}} {{.MemUsage}}' 2>/dev/null | awk -v t="$(date +%s)" '
      { v = $2; u = v; gsub(/[0-9.]/, "", u); sub(/[A-Za-z]+$/, "", v)
        f = (u == "GiB") ? 1024 : (u == "MiB") ? 1 : (u == "KiB") ? 1 / 1024 : 1 / 1048576
        printf "%d %s %.1f\n", t, $1, v * f }' >>"$MEM_LOG"
    sleep 5
  done
) &
sampler=$!

step "helm install --wait (whole platform)"
if [[ "${E2E_RESUME:-0}" == 1 ]]; then
  INSTALLED_AT=$(date +%s.%N)
  log "resuming on the installed release (E2E_RESUME=1): no install, no helm test, no setup flows"
else
INSTALLED_AT=$(date +%s.%N)
# The state volume is mounted at the same path in the pods as on the node (driftloop.stateDir):
# Feast's registry records its sources by absolute path, and the loop driver reads them here.
"$HELM" install "$RELEASE" "$CHART" -n "$NS" -f "$VALUES" --set "hostNetwork.apiServer.port=$APISERVER_PORT" \
  --set "driftloop.stateDir=$STATE" \
  --set "image.platform.tag=$TAG,image.serving.tag=$TAG" --wait --wait-for-jobs --timeout "$HELM_TIMEOUT" >&2

step "rolled out, pods Ready"
for d in $($KUBECTL -n "$NS" get deployments,statefulsets -o name); do
  $KUBECTL -n "$NS" rollout status "$d" --timeout 300s >&2
done
$KUBECTL -n "$NS" get pods -o wide >&2

step "helm test (every component, from inside pods)"
"$HELM" test "$RELEASE" -n "$NS" --timeout 6m >&2 || {
  for p in $($KUBECTL -n "$NS" get pods -l app.kubernetes.io/component=test -o name); do
    $KUBECTL -n "$NS" logs "$p" >&2 || true
  done
  die "helm test failed"
}
for p in $($KUBECTL -n "$NS" get pods -l app.kubernetes.io/component=test -o name); do
  $KUBECTL -n "$NS" logs "$p" 2>/dev/null | sed "s|^|  ${p#pod/}: |" >&2 || true
done

fi
step "the loop: flows as Jobs, traffic, monitor, automation, canary"
secret() { $KUBECTL -n "$NS" get secret "$1" -o "jsonpath={.data.$2}" | base64 -d; }
DRIVER_HOME=$(mktemp -d /tmp/driftloop-e2e-driver.XXXXXX)
# The driver's Kubernetes identity: a ServiceAccount of the namespace that may only read Jobs and
# Pods and delete Pods (it deletes one serving pod), never the cluster-admin token.
$KUBECTL -n "$NS" apply -f - >/dev/null <<YAML
apiVersion: v1
kind: ServiceAccount
metadata: {name: e2e-driver}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: e2e-driver}
rules:
  - {apiGroups: [batch], resources: [jobs], verbs: [get, list]}
  - {apiGroups: [""], resources: [pods], verbs: [get, list, watch, delete]}
  - {apiGroups: [""], resources: [pods/log], verbs: [get]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: e2e-driver}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: e2e-driver}
subjects: [{kind: ServiceAccount, name: e2e-driver, namespace: $NS}]
YAML
token_secret=""
for _ in $(seq 1 60); do
  token_secret=$($KUBECTL -n "$NS" get serviceaccount e2e-driver -o 'jsonpath={.secrets[0].name}' 2>/dev/null || true)
  [[ -n "$token_secret" ]] && break
  sleep 1
done
[[ -n "$token_secret" ]] || die "no token for the driver's ServiceAccount"
install -m 0755 "$K8S_BIN/kubectl" "$DRIVER_HOME/kubectl"
DK=("$K8S_BIN/kubectl" --kubeconfig "$DRIVER_HOME/kubeconfig")
$KUBECTL config view --raw --flatten -o 'jsonpath={.clusters[0].cluster.certificate-authority-data}' \
  | base64 -d >"$DRIVER_HOME/ca.crt"
"${DK[@]}" config set-cluster local --server "$($KUBECTL config view -o 'jsonpath={.clusters[0].cluster.server}')" \
  --certificate-authority "$DRIVER_HOME/ca.crt" --embed-certs >/dev/null
"${DK[@]}" config set-credentials e2e-driver --token "$(secret "$token_secret" token)" >/dev/null
"${DK[@]}" config set-context local --cluster local --user e2e-driver --namespace "$NS" >/dev/null
"${DK[@]}" config use-context local >/dev/null
rm -f "$DRIVER_HOME/ca.crt"
LOOP_SUMMARY="$DRIVER_HOME/summary.json"
mlflow_password=$(secret "$RELEASE-mlflow-auth" admin-password)
prefect_auth=$(secret "$RELEASE-prefect-auth" auth-string)
predict_token=$(secret "$RELEASE-serving-auth" predict-token)
feedback_token=$(secret "$RELEASE-serving-auth" feedback-token)
chmod 0600 "$DRIVER_HOME/kubeconfig"
chown -R 10001:10001 "$DRIVER_HOME"
skip_setup=""
[[ "${E2E_RESUME:-0}" != 1 ]] || skip_setup=--skip-setup
# The driver runs as the pods' uid (whatever it touches on the state volume stays theirs), with
# only these settings; secrets reach it through its environment, never a command line. It reads
# the offline feature tables only (the online store stays the pods' business): as uid 10001 the
# venv's interpreter may resolve to the system Python (root's pyenv is not readable), and
# redis-py's asyncio module needs async_timeout below Python 3.11.3.
(
  for v in $(compgen -e); do unset "$v" 2>/dev/null || true; done
  export PATH=/usr/bin:/bin HOME="$DRIVER_HOME" LANG=C.UTF-8 PYTHONPATH="$REPO_ROOT" \
    DRIFTLOOP_STATE_DIR="$STATE" \
    DRIFTLOOP_MLFLOW__TRACKING_URI=http://127.0.0.1:35000 MLFLOW_TRACKING_URI=http://127.0.0.1:35000 \
    MLFLOW_TRACKING_USERNAME=admin MLFLOW_TRACKING_PASSWORD="$mlflow_password" \
    DRIFTLOOP_PREFECT__API_URL=http://127.0.0.1:34200/api PREFECT_API_URL=http://127.0.0.1:34200/api \
    PREFECT_API_AUTH_STRING="$prefect_auth" PREFECT_HOME="$DRIVER_HOME/prefect" \
    DRIFTLOOP_SERVING__HOST=127.0.0.1 DRIFTLOOP_SERVING__PORT=38000 DRIFTLOOP_SERVING__CAPTURE_FLUSH_S=0.5 \
    DRIFTLOOP_SERVING__AUTH__PREDICT_TOKENS="[\"$predict_token\"]" \
    DRIFTLOOP_SERVING__AUTH__FEEDBACK_TOKENS="[\"$feedback_token\"]" \
    DRIFTLOOP_FEATURES__ONLINE_STORE=sqlite \
    MLFLOW_DISABLE_TELEMETRY=true DO_NOT_TRACK=true PREFECT_SERVER_ANALYTICS_ENABLED=false \
    DVC_NO_ANALYTICS=1 ITERATIVE_DO_NOT_TRACK=1
  exec setpriv --reuid=10001 --regid=10001 --clear-groups \
    "$REPO_ROOT/.venv/bin/python" "$HERE/loop.py" --namespace "$NS" \
    --kubectl "$DRIVER_HOME/kubectl --kubeconfig $DRIVER_HOME/kubeconfig" \
    --installed-at "$INSTALLED_AT" --months "${E2E_MONTHS:-2013-04,2013-05,2013-06}" \
    --summary "$LOOP_SUMMARY" $skip_setup
) >&2

step "helm upgrade (serving :$TAG -> :$TAG2), >= 1 ready pod"
SERVING_SELECTOR="app.kubernetes.io/instance=$RELEASE,app.kubernetes.io/component=serving"
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
"$HELM" upgrade "$RELEASE" "$CHART" -n "$NS" -f "$VALUES" --set "hostNetwork.apiServer.port=$APISERVER_PORT" \
  --set "driftloop.stateDir=$STATE" \
  --set "image.platform.tag=$TAG,image.serving.tag=$TAG2" --wait --wait-for-jobs --timeout "$HELM_TIMEOUT" >&2
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

step "helm uninstall: no pod or Job left"
"$HELM" uninstall "$RELEASE" -n "$NS" --wait --timeout 5m >&2
left=""
for _ in $(seq 1 60); do
  left=$($KUBECTL -n "$NS" get pods,jobs -o name 2>/dev/null)
  [[ -z "$left" ]] && break
  sleep 2
done
[[ -z "$left" ]] || die "left behind by helm uninstall: $(echo "$left" | tr '\n' ' ')"
# PVC policy: the state and MLflow-artifact claims are kept (helm.sh/resource-policy: keep), and
# the StatefulSet's PostgreSQL claim too (Kubernetes never deletes volumeClaimTemplates' claims):
# a reinstall of the same release adopts them with their data.
kept=$($KUBECTL -n "$NS" get pvc -o name | sort | tr '\n' ' ')
log "claims kept after uninstall (by policy): $kept"
for c in "$RELEASE-state" "$RELEASE-mlflow-artifacts" "data-$RELEASE-postgresql-0"; do
  [[ " $kept " == *" persistentvolumeclaim/$c "* ]] || die "claim $c was not kept"
done
$KUBECTL delete namespace "$NS" --wait=true --timeout 180s >/dev/null
$KUBECTL delete pv -l driftloop.io/e2e=true --wait=true >/dev/null
