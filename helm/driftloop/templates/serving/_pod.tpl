{{/* The serving container, shared by the Deployment and the self-check test hook:
(dict "ctx" $ "host" "0.0.0.0" ["port" 8000] ["reusePort" false]). With reusePort (the
host-network test mode) every replica binds the same port with SO_REUSEPORT and the container
declares no port: a declared port on a hostNetwork pod is a host port, and the scheduler would
refuse a second replica (or the surge pod of a rolling update) on the node. */}}
{{- define "driftloop.serving.probeSocket" -}}/tmp/driftloop-serving.sock{{- end -}}

{{- define "driftloop.serving.container" -}}
{{- $ := .ctx -}}
name: serving
image: {{ include "driftloop.image" (dict "ctx" $ "image" $.Values.image.serving) }}
imagePullPolicy: {{ $.Values.image.serving.pullPolicy }}
securityContext:
  {{- include "driftloop.containerSecurityContext" $ | nindent 2 }}
env:
  {{- include "driftloop.env" $ | nindent 2 }}
  - name: DRIFTLOOP_SERVING__HOST
    value: {{ .host | quote }}
  - name: DRIFTLOOP_SERVING__PORT
    value: {{ .port | default $.Values.serving.port | quote }}
  {{- if .reusePort }}
  - name: DRIFTLOOP_SERVING__REUSE_PORT
    value: "true"
  # The replica's own address for its probes: over the shared port a probe would reach
  # whichever replica the kernel picks (a cold surge pod failing a warm one, or passing itself).
  - name: DRIFTLOOP_SERVING__PROBE_SOCKET
    value: {{ include "driftloop.serving.probeSocket" $ | quote }}
  {{- end }}
  - name: DRIFTLOOP_SERVING__RECONCILE_INTERVAL_S
    value: {{ $.Values.serving.reconcileIntervalSeconds | quote }}
  - name: DRIFTLOOP_SERVING__AUTH__ENABLED
    value: {{ $.Values.serving.auth.enabled | quote }}
  - name: DRIFTLOOP_SERVING__AUTH__ADMIN_TOKENS
    valueFrom:
      secretKeyRef:
        name: {{ include "driftloop.serving.authSecretName" $ }}
        key: admin-tokens
  - name: DRIFTLOOP_SERVING__AUTH__PREDICT_TOKENS
    valueFrom:
      secretKeyRef:
        name: {{ include "driftloop.serving.authSecretName" $ }}
        key: predict-tokens
  # Optional in an existing Secret: without it nobody but admins may post labels.
  - name: DRIFTLOOP_SERVING__AUTH__FEEDBACK_TOKENS
    valueFrom:
      secretKeyRef:
        name: {{ include "driftloop.serving.authSecretName" $ }}
        key: feedback-tokens
        optional: true
  # MLflow: the serving user (read-only) for loading models, the rollout user for aliases.
  {{- include "driftloop.mlflow.clientEnv" (dict "ctx" $ "role" "serving") | nindent 2 }}
  {{- include "driftloop.mlflow.rolloutEnv" $ | nindent 2 }}
{{- if not .reusePort }}
ports:
  - name: http
    containerPort: {{ .port | default $.Values.serving.port }}
    protocol: TCP
{{- end }}
resources:
  {{- toYaml $.Values.serving.resources | nindent 2 }}
volumeMounts:
  {{- include "driftloop.stateMounts" $ | nindent 2 }}
{{- end -}}
