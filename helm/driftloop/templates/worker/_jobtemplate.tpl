{{/* The work pool's base job template (Prefect's format: job_configuration + variables).
Prefect placeholders are written as {{ $o }} var {{ $c }} so Helm leaves them alone. Everything
that decides what runs and with which rights is literal, never a variable a deployment or a
flow run could override: image, pull policy, command, service account, namespace, environment
(settings and credentials), security, GPU, node selection, volumes. Variables are limited to
naming, labels, retries, TTL and watch timeouts, and `additionalProperties: false` makes
Prefect reject job variables for anything else (HTTP 422) instead of ignoring them. */}}
{{- define "driftloop.worker.baseJobTemplate" -}}
{{- $o := "{{" -}}
{{- $c := "}}" -}}
{{- $jt := .Values.worker.jobTemplate -}}
{{- $resources := deepCopy $jt.resources -}}
{{- if gt (int $jt.gpu.count) 0 -}}
{{- $limits := default dict $resources.limits -}}
{{- $_ := set $limits $jt.gpu.resourceName (int $jt.gpu.count) -}}
{{- $_ := set $resources "limits" $limits -}}
{{- end -}}
job_configuration:
  labels: "{{ $o }} labels {{ $c }}"
  name: "{{ $o }} name {{ $c }}"
  namespace: {{ .Release.Namespace | quote }}
  stream_output: "{{ $o }} stream_output {{ $c }}"
  job_watch_timeout_seconds: "{{ $o }} job_watch_timeout_seconds {{ $c }}"
  pod_watch_timeout_seconds: "{{ $o }} pod_watch_timeout_seconds {{ $c }}"
  job_manifest:
    apiVersion: batch/v1
    kind: Job
    metadata:
      generateName: "{{ $o }} name {{ $c }}-"
      namespace: {{ .Release.Namespace | quote }}
      labels: "{{ $o }} labels {{ $c }}"
    spec:
      backoffLimit: "{{ $o }} backoff_limit {{ $c }}"
      ttlSecondsAfterFinished: "{{ $o }} finished_job_ttl {{ $c }}"
      template:
        metadata:
          labels:
            {{- include "driftloop.labels" (dict "ctx" . "component" "flow-run" "activity" "training") | nindent 12 }}
            {{- include "driftloop.state.podLabel" . | nindent 12 }}
            # Prefect overwrites app.kubernetes.io/name with the flow's name here; the pre-delete
            # cleanup hook finds this release's flow runs by this label instead.
            driftloop.io/release: {{ .Release.Name | quote }}
        spec:
          # prefect-kubernetes' worker refuses a job manifest without these two keys HERE (its
          # _get_base_job_manifest puts them in the pod spec; the API server drops them). Found
          # live by `make k8s-e2e`: every flow run crashed at submission without them.
          parallelism: 1
          completions: 1
          restartPolicy: Never
          serviceAccountName: {{ include "driftloop.componentName" (dict "ctx" . "component" "flow-run") }}
          automountServiceAccountToken: false
          {{- include "driftloop.podNetwork" . | nindent 10 }}
          {{- include "driftloop.imagePullSecrets" . | nindent 10 }}
          securityContext:
            {{- include "driftloop.podSecurityContext" . | nindent 12 }}
          {{- with $jt.runtimeClassName }}
          runtimeClassName: {{ . }}
          {{- end }}
          {{- with $jt.nodeSelector }}
          nodeSelector:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          {{- with $jt.tolerations }}
          tolerations:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          {{- include "driftloop.state.affinity" (dict "ctx" . "affinity" $jt.affinity) | nindent 10 }}
          containers:
            - name: prefect-job
              image: {{ include "driftloop.image" (dict "ctx" . "image" .Values.image.platform) | quote }}
              imagePullPolicy: {{ .Values.image.platform.pullPolicy | quote }}
              # Fixed: the worker leaves a list of args alone (the flow run's id comes from
              # PREFECT__FLOW_RUN_ID, set by the worker).
              command: ["prefect"]
              args: ["flow-run", "execute"]
              securityContext:
                {{- include "driftloop.containerSecurityContext" . | nindent 16 }}
              # Literal (the worker prepends its own PREFECT_* run variables): settings, the flows
              # user of MLflow and the Prefect auth string from Secrets.
              env:
                {{- include "driftloop.env" . | nindent 16 }}
                {{- include "driftloop.mlflow.clientEnv" (dict "ctx" . "role" "flows") | nindent 16 }}
                {{- include "driftloop.prefect.clientAuthEnv" . | nindent 16 }}
                {{- include "driftloop.worker.browserUrls" . | nindent 16 }}
              resources:
                {{- toYaml $resources | nindent 16 }}
              volumeMounts:
                {{- include "driftloop.stateMounts" . | nindent 16 }}
                {{- if $jt.shmSize }}
                - name: dshm
                  mountPath: /dev/shm
                {{- end }}
          volumes:
            {{- include "driftloop.stateVolumes" . | nindent 12 }}
            {{- if $jt.shmSize }}
            - name: dshm
              emptyDir:
                medium: Memory
                sizeLimit: {{ $jt.shmSize }}
            {{- end }}
variables:
  type: object
  # Job variables for anything not listed (image, command, service account, env ...) are refused.
  additionalProperties: false
  properties:
    name:
      type: string
      title: Name
      description: Name given to infrastructure created by the worker.
    labels:
      type: object
      title: Labels
      description: Labels applied to the flow-run Job.
      additionalProperties: {type: string}
      default:
        driftloop.io/activity: training
        app.kubernetes.io/part-of: driftloop
    backoff_limit:
      type: integer
      title: Backoff Limit
      minimum: 0
      default: {{ $jt.backoffLimit }}
    finished_job_ttl:
      type: integer
      title: Finished Job TTL
      default: {{ $jt.ttlSecondsAfterFinished }}
    job_watch_timeout_seconds:
      type: integer
      title: Job Watch Timeout Seconds
    pod_watch_timeout_seconds:
      type: integer
      title: Pod Watch Timeout Seconds
      default: 600
    stream_output:
      type: boolean
      title: Stream Output
      default: true
{{- end -}}
