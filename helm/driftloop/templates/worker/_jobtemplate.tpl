{{/* The work pool's base job template (Prefect's format: job_configuration + variables).
Prefect placeholders are written as {{ $o }} var {{ $c }} so Helm leaves them alone. Everything
that comes from values (security, GPU, node selection, volumes, env) is literal; what a
deployment may override per flow is a Prefect variable. */}}
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
  command: "{{ $o }} command {{ $c }}"
  env: "{{ $o }} env {{ $c }}"
  labels: "{{ $o }} labels {{ $c }}"
  name: "{{ $o }} name {{ $c }}"
  namespace: "{{ $o }} namespace {{ $c }}"
  stream_output: "{{ $o }} stream_output {{ $c }}"
  job_watch_timeout_seconds: "{{ $o }} job_watch_timeout_seconds {{ $c }}"
  pod_watch_timeout_seconds: "{{ $o }} pod_watch_timeout_seconds {{ $c }}"
  job_manifest:
    apiVersion: batch/v1
    kind: Job
    metadata:
      generateName: "{{ $o }} name {{ $c }}-"
      namespace: "{{ $o }} namespace {{ $c }}"
      labels: "{{ $o }} labels {{ $c }}"
    spec:
      backoffLimit: "{{ $o }} backoff_limit {{ $c }}"
      ttlSecondsAfterFinished: "{{ $o }} finished_job_ttl {{ $c }}"
      template:
        metadata:
          labels:
            {{- include "driftloop.labels" (dict "ctx" . "component" "flow-run" "activity" "training") | nindent 12 }}
        spec:
          restartPolicy: Never
          serviceAccountName: "{{ $o }} service_account_name {{ $c }}"
          automountServiceAccountToken: false
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
          containers:
            - name: prefect-job
              image: "{{ $o }} image {{ $c }}"
              imagePullPolicy: "{{ $o }} image_pull_policy {{ $c }}"
              args: "{{ $o }} command {{ $c }}"
              securityContext:
                {{- include "driftloop.containerSecurityContext" . | nindent 16 }}
              env:
                {{- include "driftloop.env" . | nindent 16 }}
              resources:
                {{- toYaml $resources | nindent 16 }}
              volumeMounts:
                {{- include "driftloop.stateMounts" . | nindent 16 }}
                {{- if $jt.shmSize }}
                - name: dshm
                  mountPath: /dev/shm
                {{- end }}
          volumes:
            {{- include "driftloop.stateVolumes" (dict "ctx" . "shared" true) | nindent 12 }}
            {{- if $jt.shmSize }}
            - name: dshm
              emptyDir:
                medium: Memory
                sizeLimit: {{ $jt.shmSize }}
            {{- end }}
variables:
  type: object
  properties:
    name:
      type: string
      title: Name
      description: Name given to infrastructure created by the worker.
    env:
      type: object
      title: Environment Variables
      description: Environment variables to set when starting a flow run.
      additionalProperties: {type: string}
      default: {}
    labels:
      type: object
      title: Labels
      description: Labels applied to the flow-run Job.
      additionalProperties: {type: string}
      default:
        driftloop.io/activity: training
        app.kubernetes.io/part-of: driftloop
    command:
      type: string
      title: Command
      description: The command to use when starting a flow run (default from Prefect).
    namespace:
      type: string
      title: Namespace
      default: {{ .Release.Namespace | quote }}
    image:
      type: string
      title: Image
      default: {{ include "driftloop.image" (dict "ctx" . "image" .Values.image.platform) | quote }}
    service_account_name:
      type: string
      title: Service Account Name
      default: {{ include "driftloop.componentName" (dict "ctx" . "component" "flow-run") | quote }}
    image_pull_policy:
      type: string
      title: Image Pull Policy
      enum: ["IfNotPresent", "Always", "Never"]
      default: {{ .Values.image.platform.pullPolicy | quote }}
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
