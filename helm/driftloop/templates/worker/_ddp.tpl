{{/* ---------------------------------------------------------------- distributed training */}}
{{/* `driftloop train --on kubernetes` (platform/driftloop/k8s/job.py) starts an Indexed Job of
torchrun pods plus a headless rendezvous Service. The settings below make those pods part of
this release: its labels (so the default-deny, DNS and training NetworkPolicies select them), the
rendezvous port the training NetworkPolicy opens, and the test mode's host network. */}}

{{/* torchrun's rendezvous port on rank 0 (settings kubernetes.master_port; its default). */}}
{{- define "driftloop.ddp.rendezvousPort" -}}
29500
{{- end -}}

{{/* Labels every training pod gets on top of job.py's own (kubernetes.pod_labels): the
release selector and the cost-attribution activity. */}}
{{- define "driftloop.ddp.podLabels" -}}
{{ include "driftloop.releaseSelector" . }}
driftloop.io/activity: training
{{- end -}}

{{/* EnvVars of every driftloop process that may start training Jobs (part of driftloop.env).
Renders at list indentation 0: {{ include "driftloop.ddp.env" . | nindent N }}. */}}
{{- define "driftloop.ddp.env" -}}
- name: DRIFTLOOP_KUBERNETES__POD_LABELS
  value: {{ include "driftloop.ddp.podLabels" . | fromYaml | toJson | quote }}
- name: DRIFTLOOP_KUBERNETES__MASTER_PORT
  value: {{ include "driftloop.ddp.rendezvousPort" . | quote }}
- name: DRIFTLOOP_KUBERNETES__HOST_NETWORK
  value: {{ ternary "true" "false" (eq (toString .Values.hostNetwork.enabled) "true") | quote }}
{{- end -}}

{{/* Ports of the rank-to-rank traffic in the training NetworkPolicy: the rendezvous port, and
the ports gloo and NCCL listen on between ranks, which are ephemeral ones (Linux's default
net.ipv4.ip_local_port_range 32768-60999; a port range needs endPort, Kubernetes >= 1.22). Older
clusters have no port ranges: there the rule names no ports (every port, still between training
pods only). Renders "ports:" or nothing. */}}
{{- define "driftloop.ddp.peerPorts" -}}
{{- if semverCompare ">=1.22-0" .Capabilities.KubeVersion.Version -}}
ports:
  - port: {{ include "driftloop.ddp.rendezvousPort" . }}
    protocol: TCP
  - port: 32768
    endPort: 60999
    protocol: TCP
{{- end -}}
{{- end -}}
