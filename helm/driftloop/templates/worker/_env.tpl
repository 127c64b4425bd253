{{- define "driftloop.worker.env" -}}
- name: HOME
  value: /tmp
- name: PREFECT_HOME
  value: /tmp/prefect
- name: PREFECT_API_URL
  value: {{ include "driftloop.prefect.apiUrl" . | quote }}
{{- include "driftloop.prefect.clientAuthEnv" . }}
# Watch flow-run pods in this namespace only (the Role is namespaced).
- name: PREFECT_INTEGRATIONS_KUBERNETES_OBSERVER_NAMESPACES
  value: {{ .Release.Namespace | quote }}
# Avoids reading the kube-system namespace (needs a ClusterRole) to identify the cluster.
- name: PREFECT_INTEGRATIONS_KUBERNETES_CLUSTER_UID
  value: {{ printf "%s-%s" .Release.Namespace .Release.Name | quote }}
- name: PREFECT_WORKER_WEBSERVER_HOST
  value: 127.0.0.1
- name: PREFECT_WORKER_WEBSERVER_PORT
  value: {{ include "driftloop.listenPort" (dict "ctx" . "component" "workerHealth" "port" 8080) | quote }}
{{- include "driftloop.apiServerEnv" . }}
{{- include "driftloop.telemetryEnv" . }}
{{- end -}}

{{- define "driftloop.worker.mounts" -}}
- name: tmp
  mountPath: /tmp
- name: job-template
  mountPath: /etc/driftloop
  readOnly: true
{{- end -}}

{{- /* URLs a person opens from what a flow run writes (the drift report's header, the MLflow
version tag, Prefect artifacts): mlflow.publicUrl when set, else the Ingress hosts when exposed,
else 127.0.0.1 for `kubectl port-forward`; never the in-cluster service address the pod itself
uses. Otherwise omitted for an external MLflow or Prefect, and with hostNetwork (their URLs are
already reachable). Used by flow-run Jobs and the monitoring CronJob. */ -}}
{{- define "driftloop.worker.browserUrls" -}}
{{- $scheme := ternary "https" "http" (gt (len .Values.ingress.tls) 0) }}
{{- if .Values.mlflow.publicUrl }}
- name: DRIFTLOOP_MLFLOW__PUBLIC_URL
  value: {{ trimSuffix "/" .Values.mlflow.publicUrl | quote }}
{{- else if and .Values.mlflow.enabled (not .Values.mlflow.externalTrackingUri) (not .Values.hostNetwork.enabled) }}
- name: DRIFTLOOP_MLFLOW__PUBLIC_URL
{{- if and .Values.ingress.enabled .Values.ingress.mlflowHost }}
  value: {{ printf "%s://%s" $scheme .Values.ingress.mlflowHost | quote }}
{{- else }}
  value: {{ printf "http://127.0.0.1:%v" .Values.mlflow.port | quote }}
{{- end }}
{{- end }}
{{- if and .Values.prefect.enabled (not .Values.prefect.externalApiUrl) (not .Values.hostNetwork.enabled) }}
- name: PREFECT_UI_URL
{{- if .Values.prefect.uiApiUrl }}
  value: {{ trimSuffix "/" .Values.prefect.uiApiUrl | trimSuffix "/api" | quote }}
{{- else if and .Values.ingress.enabled .Values.ingress.prefectHost }}
  value: {{ printf "%s://%s" $scheme .Values.ingress.prefectHost | quote }}
{{- else }}
  value: {{ printf "http://127.0.0.1:%v" .Values.prefect.port | quote }}
{{- end }}
{{- end }}
{{- end -}}
