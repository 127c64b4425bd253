{{/* ---------------------------------------------------------------- names */}}
{{- define "driftloop.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "driftloop.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Name of one component's objects: (dict "ctx" $ "component" "mlflow") */}}
{{- define "driftloop.componentName" -}}
{{- printf "%s-%s" (include "driftloop.fullname" .ctx) .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "driftloop.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* ---------------------------------------------------------------- labels */}}
{{/* Selector labels: (dict "ctx" $ "component" "serving") */}}
{{- define "driftloop.selectorLabels" -}}
app.kubernetes.io/name: {{ include "driftloop.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* All labels of an object or pod: (dict "ctx" $ "component" "serving" "activity" "serving").
activity is the cost-attribution label: training | serving | monitoring | platform. */}}
{{- define "driftloop.labels" -}}
helm.sh/chart: {{ include "driftloop.chart" .ctx }}
{{ include "driftloop.selectorLabels" . }}
app.kubernetes.io/part-of: driftloop
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
driftloop.io/activity: {{ .activity }}
{{- with .ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Labels every pod of this release carries (used by the default-deny NetworkPolicy). */}}
{{- define "driftloop.releaseSelector" -}}
app.kubernetes.io/name: {{ include "driftloop.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* ---------------------------------------------------------------- images */}}
{{/* (dict "ctx" $ "image" .Values.image.platform) */}}
{{- define "driftloop.image" -}}
{{- printf "%s:%s" .image.repository (default .ctx.Chart.AppVersion .image.tag) -}}
{{- end -}}

{{/* ---------------------------------------------------------------- security */}}
{{- define "driftloop.podSecurityContext" -}}
{{- toYaml .Values.podSecurityContext -}}
{{- end -}}

{{/* Pod security context of a third-party image that runs as its own uid: (dict "uid" 999) */}}
{{- define "driftloop.podSecurityContextFor" -}}
runAsNonRoot: true
runAsUser: {{ .uid }}
runAsGroup: {{ .uid }}
fsGroup: {{ .uid }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "driftloop.containerSecurityContext" -}}
{{- toYaml .Values.containerSecurityContext -}}
{{- end -}}

{{- define "driftloop.imagePullSecrets" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
{{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* ---------------------------------------------------------------- probes */}}
{{/* A probe that GETs path on port: (dict "ctx" $ "path" "/health" "port" 5000 "period" 10
"failures" 3 "initialDelay" 0). Mode httpGet (kubelet calls the pod) or exec (python inside the
container calls 127.0.0.1). */}}
{{- define "driftloop.httpProbe" -}}
{{- if and (eq .ctx.Values.probes.mode "exec") .socket }}
exec:
  command: [python, -m, serving.probe, --socket, {{ .socket | quote }}, {{ .path | quote }}]
{{- else if eq .ctx.Values.probes.mode "exec" }}
exec:
  command:
    - python
    - -c
    - {{ printf "import urllib.request; urllib.request.urlopen('http://127.0.0.1:%v%s', timeout=4)" .port .path | quote }}
{{- else }}
httpGet:
  path: {{ .path }}
  port: {{ .port }}
{{- end }}
initialDelaySeconds: {{ .initialDelay | default 0 }}
periodSeconds: {{ .period | default 10 }}
timeoutSeconds: 5
failureThreshold: {{ .failures | default 3 }}
{{- end -}}

{{/* ---------------------------------------------------------------- API versions */}}
{{/* Newest API a cluster serves. A live cluster lists "group/version/Kind"; helm template
without a cluster knows only "group/version", so the Kubernetes version decides there
(--kube-version). */}}
{{- define "driftloop.hpa.apiVersion" -}}
{{- if or (.Capabilities.APIVersions.Has "autoscaling/v2/HorizontalPodAutoscaler") (and (.Capabilities.APIVersions.Has "autoscaling/v2") (semverCompare ">=1.23-0" .Capabilities.KubeVersion.Version)) -}}
autoscaling/v2
{{- else -}}
autoscaling/v2beta2
{{- end -}}
{{- end -}}

{{- define "driftloop.pdb.apiVersion" -}}
{{- if or (.Capabilities.APIVersions.Has "policy/v1/PodDisruptionBudget") (and (.Capabilities.APIVersions.Has "policy/v1") (semverCompare ">=1.21-0" .Capabilities.KubeVersion.Version)) -}}
policy/v1
{{- else -}}
policy/v1beta1
{{- end -}}
{{- end -}}

{{- define "driftloop.cronjob.apiVersion" -}}
{{- if or (.Capabilities.APIVersions.Has "batch/v1/CronJob") (semverCompare ">=1.21-0" .Capabilities.KubeVersion.Version) -}}
batch/v1
{{- else -}}
batch/v1beta1
{{- end -}}
{{- end -}}

{{/* ---------------------------------------------------------------- secrets */}}
{{/* A value kept across upgrades: the existing Secret's key when the Secret exists in the
cluster, else a fresh random one. (dict "ctx" $ "name" SECRET "key" KEY "length" 32) */}}
{{- define "driftloop.stableRandom" -}}
{{- $existing := lookup "v1" "Secret" .ctx.Release.Namespace .name -}}
{{- if and $existing $existing.data (hasKey $existing.data .key) -}}
{{- index $existing.data .key | b64dec -}}
{{- else -}}
{{- /* Remembered for the rest of this render (the root context is shared by every template),
so two templates that need the same generated value (e.g. a Secret and a checksum) agree. */ -}}
{{- $memo := index .ctx "driftloopGenerated" | default dict -}}
{{- $id := printf "%s/%s" .name .key -}}
{{- if not (hasKey $memo $id) -}}
{{- $_ := set $memo $id (randAlphaNum (.length | default 32)) -}}
{{- $_ := set .ctx "driftloopGenerated" $memo -}}
{{- end -}}
{{- index $memo $id -}}
{{- end -}}
{{- end -}}

{{- define "driftloop.postgresql.secretName" -}}
{{- if .Values.postgresql.existingSecret -}}
{{- .Values.postgresql.existingSecret -}}
{{- else if not .Values.postgresql.enabled -}}
{{- fail "postgresql.existingSecret is required when postgresql.enabled=false (the external server's password)" -}}
{{- else -}}
{{- include "driftloop.componentName" (dict "ctx" . "component" "postgresql") -}}
{{- end -}}
{{- end -}}

{{/* Key of one database user's password: (dict "ctx" $ "user" "superuser|mlflow|prefect") */}}
{{- define "driftloop.postgresql.passwordKey" -}}
{{- $v := .ctx.Values.postgresql -}}
{{- if $v.existingSecret -}}
{{- if eq .user "mlflow" -}}{{ $v.existingSecretMlflowPasswordKey }}
{{- else if eq .user "prefect" -}}{{ $v.existingSecretPrefectPasswordKey }}
{{- else -}}{{ $v.existingSecretPasswordKey }}{{- end -}}
{{- else -}}
{{- if eq .user "superuser" -}}password{{- else -}}{{ printf "%s-password" .user }}{{- end -}}
{{- end -}}
{{- end -}}

{{- define "driftloop.postgresql.host" -}}
{{- if and .Values.postgresql.enabled .Values.hostNetwork.enabled -}}
{{- .Values.hostNetwork.host -}}
{{- else if .Values.postgresql.enabled -}}
{{- include "driftloop.componentName" (dict "ctx" . "component" "postgresql") -}}
{{- else -}}
{{- required "postgresql.external.host is required when postgresql.enabled=false" .Values.postgresql.external.host -}}
{{- end -}}
{{- end -}}

{{- define "driftloop.postgresql.port" -}}
{{- if and .Values.postgresql.enabled .Values.hostNetwork.enabled -}}
{{- .Values.hostNetwork.ports.postgresql -}}
{{- else if .Values.postgresql.enabled -}}
{{- .Values.postgresql.port -}}
{{- else -}}
{{- .Values.postgresql.external.port -}}
{{- end -}}
{{- end -}}

{{/* Query string of connection URLs (sslmode for external servers only). */}}
{{- define "driftloop.postgresql.query" -}}
{{- if and (not .Values.postgresql.enabled) .Values.postgresql.external.sslmode -}}
{{- printf "?sslmode=%s" .Values.postgresql.external.sslmode -}}
{{- end -}}
{{- end -}}

{{/* EnvVar <name> with one database user's password from the Secret; later env values use
$(<name>). (dict "ctx" $ "user" "superuser|mlflow|prefect" "name" "POSTGRES_PASSWORD") */}}
{{- define "driftloop.postgresql.passwordEnv" -}}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ include "driftloop.postgresql.secretName" .ctx }}
      key: {{ include "driftloop.postgresql.passwordKey" . }}
{{- end -}}

{{- define "driftloop.redis.secretName" -}}
{{- if .Values.redis.existingSecret -}}
{{- .Values.redis.existingSecret -}}
{{- else if not .Values.redis.enabled -}}
{{- fail "redis.existingSecret is required when redis.enabled=false (the external server's password)" -}}
{{- else -}}
{{- include "driftloop.componentName" (dict "ctx" . "component" "redis") -}}
{{- end -}}
{{- end -}}

{{- define "driftloop.redis.passwordKey" -}}
{{- if .Values.redis.existingSecret -}}
{{- .Values.redis.existingSecretPasswordKey -}}
{{- else -}}
password
{{- end -}}
{{- end -}}

{{- define "driftloop.redis.address" -}}
{{- if and .Values.redis.enabled .Values.hostNetwork.enabled -}}
{{- printf "%s:%v" .Values.hostNetwork.host .Values.hostNetwork.ports.redis -}}
{{- else if .Values.redis.enabled -}}
{{- printf "%s:%v" (include "driftloop.componentName" (dict "ctx" . "component" "redis")) .Values.redis.port -}}
{{- else -}}
{{- printf "%s:%v" (required "redis.external.host is required when redis.enabled=false" .Values.redis.external.host) .Values.redis.external.port -}}
{{- end -}}
{{- end -}}

{{/* ---------------------------------------------------------------- MLflow auth */}}
{{/* "true" when clients get MLflow credentials: auth on, and the chart runs MLflow or an
existing Secret holds the credentials of an external one. */}}
{{- define "driftloop.mlflow.authOn" -}}
{{- if and .Values.mlflow.auth.enabled (or .Values.mlflow.enabled .Values.mlflow.auth.existingSecret) -}}
true
{{- end -}}
{{- end -}}

{{- define "driftloop.mlflow.authSecretName" -}}
{{- if .Values.mlflow.auth.existingSecret -}}
{{- .Values.mlflow.auth.existingSecret -}}
{{- else -}}
{{- include "driftloop.componentName" (dict "ctx" . "component" "mlflow-auth") -}}
{{- end -}}
{{- end -}}

{{/* MLflow user of one role as the MLflow client's own variables:
(dict "ctx" $ "role" "flows|serving") */}}
{{- define "driftloop.mlflow.clientEnv" -}}
{{- if include "driftloop.mlflow.authOn" .ctx }}
- name: MLFLOW_TRACKING_USERNAME
  value: {{ index .ctx.Values.mlflow.auth.users .role | quote }}
- name: MLFLOW_TRACKING_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "driftloop.mlflow.authSecretName" .ctx }}
      key: {{ printf "%s-password" .role }}
{{- end }}
{{- end -}}

{{/* The rollout user of the inference service. Its variable names live only here, so a rename
in driftloop's settings is a one-line change. */}}
{{- define "driftloop.mlflow.rolloutEnv" -}}
{{- if include "driftloop.mlflow.authOn" . }}
- name: DRIFTLOOP_MLFLOW__AUTH__ROLLOUT_USERNAME
  value: {{ .Values.mlflow.auth.users.rollout | quote }}
- name: DRIFTLOOP_MLFLOW__AUTH__ROLLOUT_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "driftloop.mlflow.authSecretName" . }}
      key: rollout-password
{{- end }}
{{- end -}}

{{/* ---------------------------------------------------------------- Prefect auth */}}
{{- define "driftloop.prefect.authSecretName" -}}
{{- if .Values.prefect.auth.existingSecret -}}
{{- .Values.prefect.auth.existingSecret -}}
{{- else -}}
{{- include "driftloop.componentName" (dict "ctx" . "component" "prefect-auth") -}}
{{- end -}}
{{- end -}}

{{- define "driftloop.prefect.authSecretKey" -}}
{{- if .Values.prefect.auth.existingSecret -}}
{{- .Values.prefect.auth.existingSecretKey -}}
{{- else -}}
auth-string
{{- end -}}
{{- end -}}

{{/* "true" when Prefect clients send an auth string: auth on, and the chart runs Prefect or an
existing Secret holds the string of an external server. */}}
{{- define "driftloop.prefect.authOn" -}}
{{- if and .Values.prefect.auth.enabled (or .Values.prefect.enabled .Values.prefect.auth.existingSecret) -}}
true
{{- end -}}
{{- end -}}

{{/* PREFECT_API_AUTH_STRING of every Prefect client (worker, flow runs, monitoring, deploy). */}}
{{- define "driftloop.prefect.clientAuthEnv" -}}
{{- if include "driftloop.prefect.authOn" . }}
- name: PREFECT_API_AUTH_STRING
  valueFrom:
    secretKeyRef:
      name: {{ include "driftloop.prefect.authSecretName" . }}
      key: {{ include "driftloop.prefect.authSecretKey" . }}
{{- end }}
{{- end -}}

{{/* ---------------------------------------------------------------- serving auth */}}
{{- define "driftloop.serving.authSecretName" -}}
{{- if .Values.serving.auth.existingSecret -}}
{{- .Values.serving.auth.existingSecret -}}
{{- else -}}
{{- include "driftloop.componentName" (dict "ctx" . "component" "serving-auth") -}}
{{- end -}}
{{- end -}}

{{/* ---------------------------------------------------------------- service URLs */}}
{{- define "driftloop.mlflow.url" -}}
{{- if .Values.mlflow.externalTrackingUri -}}
{{- .Values.mlflow.externalTrackingUri -}}
{{- else if and .Values.mlflow.enabled .Values.hostNetwork.enabled -}}
{{- printf "http://%s:%v" .Values.hostNetwork.host .Values.hostNetwork.ports.mlflow -}}
{{- else if .Values.mlflow.enabled -}}
{{- printf "http://%s:%v" (include "driftloop.componentName" (dict "ctx" . "component" "mlflow")) .Values.mlflow.port -}}
{{- else -}}
{{- fail "mlflow.externalTrackingUri is required when mlflow.enabled=false" -}}
{{- end -}}
{{- end -}}

{{- define "driftloop.prefect.apiUrl" -}}
{{- if .Values.prefect.externalApiUrl -}}
{{- .Values.prefect.externalApiUrl -}}
{{- else if and .Values.prefect.enabled .Values.hostNetwork.enabled -}}
{{- printf "http://%s:%v/api" .Values.hostNetwork.host .Values.hostNetwork.ports.prefect -}}
{{- else if .Values.prefect.enabled -}}
{{- printf "http://%s:%v/api" (include "driftloop.componentName" (dict "ctx" . "component" "prefect-server")) .Values.prefect.port -}}
{{- else if or .Values.worker.enabled .Values.deploy.enabled -}}
{{- fail "prefect.externalApiUrl is required when prefect.enabled=false (the worker and the deploy hook talk to Prefect)" -}}
{{- end -}}
{{- end -}}

{{- define "driftloop.serving.url" -}}
{{- if .Values.hostNetwork.enabled -}}
{{- printf "http://%s:%v" .Values.hostNetwork.host .Values.hostNetwork.ports.serving -}}
{{- else -}}
{{- printf "http://%s:%v" (include "driftloop.componentName" (dict "ctx" . "component" "serving")) .Values.serving.port -}}
{{- end -}}
{{- end -}}

{{/* ---------------------------------------------------------------- host network (test mode) */}}
{{/* Pod-level fields of every pod of the release: on the node's network in the test mode
(values hostNetwork), nothing otherwise. Renders at pod-spec indentation 0. */}}
{{- define "driftloop.podNetwork" -}}
{{- if .Values.hostNetwork.enabled }}
{{- include "driftloop.hostNetwork.checked" . }}
hostNetwork: true
dnsPolicy: ClusterFirstWithHostNet
{{- end }}
{{- end -}}

{{/* Port a component's server listens on: (dict "ctx" $ "component" "mlflow|prefect|serving|
postgresql|redis|workerHealth" "port" <the normal port>). */}}
{{- define "driftloop.listenPort" -}}
{{- if .ctx.Values.hostNetwork.enabled -}}
{{- index .ctx.Values.hostNetwork.ports .component -}}
{{- else -}}
{{- .port -}}
{{- end -}}
{{- end -}}

{{/* Address a server binds to: the test mode's loopback host, else every interface. */}}
{{- define "driftloop.listenHost" -}}
{{- if .Values.hostNetwork.enabled -}}
{{- include "driftloop.hostNetwork.checked" . -}}
{{- .Values.hostNetwork.host -}}
{{- else -}}
0.0.0.0
{{- end -}}
{{- end -}}

{{/* Fail closed in the test mode: loopback only (on the node's network any other address is
every interface's neighbour, and NetworkPolicies do not apply), every auth on (any process on the
node reaches the ports), exec probes (the kubelet's httpGet calls the node address, where nothing
listens) and one replica of each single-port server. Renders nothing. */}}
{{- define "driftloop.hostNetwork.checked" -}}
{{- $h := .Values.hostNetwork -}}
{{- if not (regexMatch "^127(\\.[0-9]{1,3}){3}$" $h.host) -}}
{{- fail (printf "hostNetwork.host=%s: the test mode listens on a loopback address (127.x.y.z) only" $h.host) -}}
{{- end -}}
{{- if not (and .Values.serving.auth.enabled .Values.mlflow.auth.enabled .Values.prefect.auth.enabled) -}}
{{- fail "hostNetwork.enabled needs serving.auth, mlflow.auth and prefect.auth enabled: every process on the node reaches the servers' ports" -}}
{{- end -}}
{{- if ne .Values.probes.mode "exec" -}}
{{- fail "hostNetwork.enabled needs probes.mode=exec: the servers listen on loopback, where the kubelet's httpGet probes do not reach" -}}
{{- end -}}
{{- if gt (int .Values.mlflow.replicas) 1 -}}
{{- fail "hostNetwork.enabled runs one MLflow replica (mlflow.replicas=1): a second could not bind the port" -}}
{{- end -}}
{{- end -}}

{{/* KUBERNETES_SERVICE_HOST/PORT of pods that call the Kubernetes API, in the test mode (the
kubernetes Service does not route there). Renders EnvVars or nothing. */}}
{{- define "driftloop.apiServerEnv" -}}
{{- if .Values.hostNetwork.enabled }}
- name: KUBERNETES_SERVICE_HOST
  value: {{ .Values.hostNetwork.apiServer.host | quote }}
- name: KUBERNETES_SERVICE_PORT
  value: {{ .Values.hostNetwork.apiServer.port | quote }}
{{- end }}
{{- end -}}

{{/* ---------------------------------------------------------------- driftloop env */}}
{{/* Environment of every driftloop process (platform and serving images). Settings, not code,
tell driftloop where its services are. */}}
{{- define "driftloop.env" -}}
- name: HOME
  value: /tmp
- name: DRIFTLOOP_ENVIRONMENT
  value: {{ .Values.driftloop.environment | quote }}
- name: DRIFTLOOP_LOG_LEVEL
  value: {{ .Values.driftloop.logLevel | quote }}
- name: DRIFTLOOP_STATE_DIR
  value: {{ .Values.driftloop.stateDir | quote }}
# DVC's site cache defaults to /var/tmp/dvc, on the read-only root filesystem (found live by
# `make k8s-e2e`: the ingest Job failed); /tmp is every driftloop pod's emptyDir.
- name: DVC_SITE_CACHE_DIR
  value: /tmp/dvc-site-cache
- name: DRIFTLOOP_MLFLOW__TRACKING_URI
  value: {{ include "driftloop.mlflow.url" . | quote }}
- name: DRIFTLOOP_MLFLOW__EXPERIMENT
  value: {{ .Values.driftloop.experiment | quote }}
- name: DRIFTLOOP_MLFLOW__REGISTERED_MODEL
  value: {{ .Values.driftloop.registeredModel | quote }}
- name: MLFLOW_TRACKING_URI
  value: {{ include "driftloop.mlflow.url" . | quote }}
{{- with include "driftloop.prefect.apiUrl" . }}
- name: DRIFTLOOP_PREFECT__API_URL
  value: {{ . | quote }}
- name: PREFECT_API_URL
  value: {{ . | quote }}
{{- end }}
- name: DRIFTLOOP_PREFECT__WORK_POOL
  value: {{ .Values.worker.workPool | quote }}
- name: DRIFTLOOP_PREFECT__WORK_POOL_TYPE
  value: kubernetes
- name: DRIFTLOOP_PREFECT__START_WORKER
  value: "false"
- name: DRIFTLOOP_MONITORING__SCHEDULE_MINUTES
  value: {{ .Values.monitoring.scheduleMinutes | quote }}
# Distributed training Jobs (`driftloop train --on kubernetes`) mount the same state claim.
- name: DRIFTLOOP_KUBERNETES__NAMESPACE
  value: {{ .Release.Namespace | quote }}
- name: DRIFTLOOP_KUBERNETES__STATE_CLAIM
  value: {{ include "driftloop.state.claimName" . | quote }}
- name: DRIFTLOOP_KUBERNETES__IMAGE
  value: {{ include "driftloop.image" (dict "ctx" . "image" .Values.image.platform) | quote }}
- name: DRIFTLOOP_KUBERNETES__IMAGE_PULL_POLICY
  value: {{ .Values.image.platform.pullPolicy | quote }}
{{- if .Values.worker.enabled }}
- name: DRIFTLOOP_KUBERNETES__SERVICE_ACCOUNT
  value: {{ include "driftloop.componentName" (dict "ctx" . "component" "flow-run") | quote }}
{{- end }}
{{ include "driftloop.ddp.env" . }}
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "driftloop.redis.secretName" . }}
      key: {{ include "driftloop.redis.passwordKey" . }}
- name: DRIFTLOOP_FEATURES__ONLINE_STORE
  value: redis
- name: DRIFTLOOP_FEATURES__REDIS_CONNECTION
  value: {{ printf "%s,password=$(REDIS_PASSWORD)" (include "driftloop.redis.address" .) | quote }}
{{- include "driftloop.telemetryEnv" . }}
{{- with .Values.driftloop.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "driftloop.telemetryEnv" }}
- name: MLFLOW_DISABLE_TELEMETRY
  value: "true"
- name: DO_NOT_TRACK
  value: "true"
- name: PREFECT_SERVER_ANALYTICS_ENABLED
  value: "false"
- name: DVC_NO_ANALYTICS
  value: "1"
- name: ITERATIVE_DO_NOT_TRACK
  value: "1"
{{- /* Prefect's v2 UI fetches an analytics SDK's remote config from amplitude.com even with
  analytics off; the v1 UI loads nothing from outside the server (settings.QUIET_ENV). */}}
- name: PREFECT_SERVER_UI_V2_ENABLED
  value: "false"
- name: PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT
  value: "false"
{{- end -}}

{{/* ---------------------------------------------------------------- state */}}
{{/* The state claim's name. State never lives on a per-pod emptyDir. */}}
{{- define "driftloop.state.claimName" -}}
{{- if not .Values.sharedState.enabled -}}
{{- fail "sharedState.enabled=false is refused: state (data repo, feature registry, capture, audit log, ledger) would live on per-pod emptyDirs and be lost on every restart. Keep sharedState.enabled=true (a new claim) or set sharedState.existingClaim." -}}
{{- end -}}
{{- default (include "driftloop.componentName" (dict "ctx" . "component" "state")) .Values.sharedState.existingClaim -}}
{{- end -}}

{{/* Label of every pod that mounts the state claim (co-location on ReadWriteOnce claims). */}}
{{- define "driftloop.state.podLabel" -}}
driftloop.io/state: {{ include "driftloop.state.claimName" . | trunc 63 | trimSuffix "-" }}
{{- end -}}

{{/* Affinity of a state pod: the component's own affinity, plus (claims that are not
ReadWriteMany, when the component sets no podAffinity itself) a required podAffinity to the
node where the other state pods run, so a ReadWriteOnce volume is attached to one node only.
(dict "ctx" $ "affinity" .Values.serving.affinity); renders "affinity:" or nothing. */}}
{{- define "driftloop.state.affinity" -}}
{{- $aff := deepCopy (.affinity | default dict) -}}
{{- if and (not (has "ReadWriteMany" .ctx.Values.sharedState.accessModes)) (not (hasKey $aff "podAffinity")) -}}
{{- $term := dict "topologyKey" "kubernetes.io/hostname" "labelSelector" (dict "matchLabels" (include "driftloop.state.podLabel" .ctx | fromYaml)) -}}
{{- $_ := set $aff "podAffinity" (dict "requiredDuringSchedulingIgnoredDuringExecution" (list $term)) -}}
{{- end -}}
{{- with $aff }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Volumes for /tmp and the state folder (the state claim, never an emptyDir). */}}
{{- define "driftloop.stateVolumes" -}}
- name: tmp
  emptyDir: {}
- name: state
  persistentVolumeClaim:
    claimName: {{ include "driftloop.state.claimName" . }}
{{- end -}}

{{- define "driftloop.stateMounts" -}}
- name: tmp
  mountPath: /tmp
- name: state
  mountPath: {{ .Values.driftloop.stateDir }}
{{- end -}}

{{/* ---------------------------------------------------------------- egress to MLflow/Prefect */}}
{{/* Port of an http(s) URL: the explicit one, else 443 for https and 80 for http. */}}
{{- define "driftloop.urlPort" -}}
{{- $u := urlParse . -}}
{{- $hostPort := splitList ":" $u.host -}}
{{- if gt (len $hostPort) 1 -}}
{{- last $hostPort -}}
{{- else if eq $u.scheme "https" -}}
443
{{- else -}}
80
{{- end -}}
{{- end -}}

{{/* NetworkPolicy egress rule to a platform server: its pods, or the port of the external URL
(no peer: its address is outside the cluster; nothing for a database URI such as sqlite:).
dict: ctx, component, port, external. */}}
{{- define "driftloop.serverEgress" -}}
{{- if .external -}}
{{- if has (urlParse .external).scheme (list "http" "https") -}}
- ports:
    - port: {{ include "driftloop.urlPort" .external }}
      protocol: TCP
{{- end -}}
{{- else -}}
- to:
    - podSelector:
        matchLabels:
          {{- include "driftloop.selectorLabels" (dict "ctx" .ctx "component" .component) | nindent 10 }}
  ports:
    - port: {{ .port }}
      protocol: TCP
{{- end }}
{{- end -}}
