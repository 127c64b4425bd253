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
