{{/* The serving container, shared by the Deployment and the self-check test hook:
(dict "ctx" $ "host" "0.0.0.0") */}}
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
    value: {{ $.Values.serving.port | quote }}
  - name: DRIFTLOOP_SERVING__RECONCILE_INTERVAL_S
    value: {{ $.Values.serving.reconcileIntervalSeconds | quote }}
  - name: DRIFTLOOP_SERVING__AUTH__ENABLED
    value: "true"
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
ports:
  - name: http
    containerPort: {{ $.Values.serving.port }}
    protocol: TCP
resources:
  {{- toYaml $.Values.serving.resources | nindent 2 }}
volumeMounts:
  {{- include "driftloop.stateMounts" $ | nindent 2 }}
{{- end -}}
