{{/* ---------------------------------------------------------------- `helm test` */}}
{{/* One test pod per component (templates/tests/test-<target>.yaml), each running the one
checker script of the ConfigMap <release>-driftloop-test-check (check.py below) with its target
as argument and its settings in DRIFTLOOP_TEST_* variables (passwords and tokens from Secrets).
Targets: postgresql, redis, mlflow, prefect, serving, plus serving-selfcheck (its own script). */}}

{{/* "true" when the target's component runs in this release: (dict "ctx" $ "target" "redis") */}}
{{- define "driftloop.tests.enabledFor" -}}
{{- $v := .ctx.Values -}}
{{- if $v.tests.enabled -}}
{{- $on := dict "postgresql" $v.postgresql.enabled "redis" $v.redis.enabled "mlflow" $v.mlflow.enabled "prefect" $v.prefect.enabled "serving" $v.serving.enabled "serving-selfcheck" $v.serving.enabled -}}
{{- if not (hasKey $on .target) -}}
{{- fail (printf "unknown helm test target %q" .target) -}}
{{- end -}}
{{- if index $on .target -}}true{{- end -}}
{{- end -}}
{{- end -}}

{{/* Every target, in the order helm test reports them. */}}
{{- define "driftloop.tests.targets" -}}
postgresql redis mlflow prefect serving serving-selfcheck
{{- end -}}

{{/* Selector labels of one target's test pod; NetworkPolicies admit exactly these pods:
(dict "ctx" $ "target" "redis") */}}
{{- define "driftloop.tests.selectorLabels" -}}
{{ include "driftloop.selectorLabels" (dict "ctx" .ctx "component" "test") }}
driftloop.io/test: {{ .target }}
{{- end -}}

{{/* All labels of one target's test pod. */}}
{{- define "driftloop.tests.labels" -}}
{{ include "driftloop.labels" (dict "ctx" .ctx "component" "test" "activity" "platform") }}
driftloop.io/test: {{ .target }}
{{- end -}}

{{/* A NetworkPolicyPeer list item selecting one target's test pod. */}}
{{- define "driftloop.tests.peer" -}}
- podSelector:
    matchLabels:
      {{- include "driftloop.tests.selectorLabels" . | nindent 6 }}
{{- end -}}

{{- define "driftloop.tests.podName" -}}
{{- include "driftloop.componentName" (dict "ctx" .ctx "component" (printf "test-%s" .target)) -}}
{{- end -}}

{{- define "driftloop.tests.configMapName" -}}
{{- include "driftloop.componentName" (dict "ctx" . "component" "test-check") -}}
{{- end -}}

{{/* ------------------------------------------------ the OIP v2 request of the examples */}}
{{/* One flight as a complete feature row (every column of driftloop.schema.MODEL_INPUT_COLUMNS,
content type "features": no online-store lookup), one input tensor per line. Used by the serving
test pod and the curl example of NOTES.txt; tests/helm decode it with serving.codec. */}}
{{- define "driftloop.tests.inferenceInputs" -}}
{"name": "carrier", "shape": [1], "datatype": "BYTES", "data": ["UA"]}
{"name": "origin", "shape": [1], "datatype": "BYTES", "data": ["EWR"]}
{"name": "dest", "shape": [1], "datatype": "BYTES", "data": ["IAH"]}
{"name": "plane_type", "shape": [1], "datatype": "BYTES", "data": ["Fixed wing multi engine"]}
{"name": "distance", "shape": [1], "datatype": "FP64", "data": [1400.0]}
{"name": "dep_hour", "shape": [1], "datatype": "FP64", "data": [5.0]}
{"name": "day_of_week", "shape": [1], "datatype": "FP64", "data": [1.0]}
{"name": "temp", "shape": [1], "datatype": "FP64", "data": [39.0]}
{"name": "dewp", "shape": [1], "datatype": "FP64", "data": [28.0]}
{"name": "humid", "shape": [1], "datatype": "FP64", "data": [64.0]}
{"name": "wind_speed", "shape": [1], "datatype": "FP64", "data": [12.7]}
{"name": "precip", "shape": [1], "datatype": "FP64", "data": [0.0]}
{"name": "visib", "shape": [1], "datatype": "FP64", "data": [10.0]}
{"name": "pressure", "shape": [1], "datatype": "FP64", "data": [1012.0]}
{"name": "plane_year", "shape": [1], "datatype": "FP64", "data": [1999.0]}
{"name": "seats", "shape": [1], "datatype": "FP64", "data": [149.0]}
{"name": "engines", "shape": [1], "datatype": "FP64", "data": [2.0]}
{"name": "late_rate_7d", "shape": [1], "datatype": "FP64", "data": [0.2]}
{"name": "mean_dep_delay_7d", "shape": [1], "datatype": "FP64", "data": [11.0]}
{"name": "flights_7d", "shape": [1], "datatype": "FP64", "data": [300.0]}
{{- end -}}

{{/* The request body on one line. */}}
{{- define "driftloop.tests.inferenceBody" -}}
{{- printf "{\"inputs\": [%s]}" (include "driftloop.tests.inferenceInputs" . | splitList "\n" | join ", ") -}}
{{- end -}}

{{/* ------------------------------------------------ settings of each test pod (EnvVars) */}}
{{- define "driftloop.tests.env.postgresql" -}}
- name: DRIFTLOOP_TEST_PG_HOST
  value: {{ include "driftloop.postgresql.host" . | quote }}
- name: DRIFTLOOP_TEST_PG_PORT
  value: {{ include "driftloop.postgresql.port" . | quote }}
- name: DRIFTLOOP_TEST_PG_MLFLOW_USER
  value: {{ .Values.postgresql.mlflow.username | quote }}
- name: DRIFTLOOP_TEST_PG_MLFLOW_DB
  value: {{ .Values.postgresql.mlflow.database | quote }}
{{ include "driftloop.postgresql.passwordEnv" (dict "ctx" . "user" "mlflow" "name" "DRIFTLOOP_TEST_PG_MLFLOW_PASSWORD") }}
- name: DRIFTLOOP_TEST_PG_PREFECT_USER
  value: {{ .Values.postgresql.prefect.username | quote }}
- name: DRIFTLOOP_TEST_PG_PREFECT_DB
  value: {{ .Values.postgresql.prefect.database | quote }}
{{ include "driftloop.postgresql.passwordEnv" (dict "ctx" . "user" "prefect" "name" "DRIFTLOOP_TEST_PG_PREFECT_PASSWORD") }}
{{- end -}}

{{- define "driftloop.tests.env.redis" -}}
- name: DRIFTLOOP_TEST_REDIS_ADDRESS
  value: {{ include "driftloop.redis.address" . | quote }}
- name: DRIFTLOOP_TEST_REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "driftloop.redis.secretName" . }}
      key: {{ include "driftloop.redis.passwordKey" . }}
{{- end -}}

{{- define "driftloop.tests.env.mlflow" -}}
- name: DRIFTLOOP_TEST_MLFLOW_URL
  value: {{ include "driftloop.mlflow.url" . | quote }}
- name: DRIFTLOOP_TEST_MLFLOW_AUTH
  value: {{ include "driftloop.mlflow.authOn" . | default "false" | quote }}
- name: DRIFTLOOP_TEST_MLFLOW_MODEL
  value: {{ .Values.driftloop.registeredModel | quote }}
# The provision hook grants the serving user READ on the registered model.
- name: DRIFTLOOP_TEST_MLFLOW_PROVISIONED
  value: {{ ternary "true" "false" (and .Values.mlflow.auth.enabled .Values.mlflow.provision.enabled) | quote }}
{{- include "driftloop.mlflow.clientEnv" (dict "ctx" . "role" "serving") }}
{{- end -}}

{{- define "driftloop.tests.env.prefect" -}}
- name: DRIFTLOOP_TEST_PREFECT_API_URL
  value: {{ include "driftloop.prefect.apiUrl" . | quote }}
- name: DRIFTLOOP_TEST_PREFECT_AUTH
  value: {{ include "driftloop.prefect.authOn" . | default "false" | quote }}
# The worker's work pool ("" without a worker: nothing sends heartbeats).
- name: DRIFTLOOP_TEST_PREFECT_WORK_POOL
  value: {{ ternary .Values.worker.workPool "" .Values.worker.enabled | quote }}
{{- include "driftloop.prefect.clientAuthEnv" . }}
{{- end -}}

{{- define "driftloop.tests.env.serving" -}}
- name: DRIFTLOOP_TEST_SERVING_URL
  value: {{ include "driftloop.serving.url" . | quote }}
- name: DRIFTLOOP_TEST_SERVING_MODEL
  value: {{ .Values.driftloop.registeredModel | quote }}
- name: DRIFTLOOP_TEST_SERVING_AUTH
  value: {{ .Values.serving.auth.enabled | toString | quote }}
{{- if .Values.serving.auth.enabled }}
# The plain predict token (generated Secrets only: an existing Secret may hold only hashes).
- name: DRIFTLOOP_TEST_PREDICT_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "driftloop.serving.authSecretName" . }}
      key: predict-token
      optional: true
{{- end }}
{{- end -}}

{{/* ------------------------------------------------ one test pod: (dict "ctx" $ "target" t) */}}
{{- define "driftloop.tests.pod" -}}
{{- $ := .ctx -}}
apiVersion: v1
kind: Pod
metadata:
  name: {{ include "driftloop.tests.podName" . }}
  namespace: {{ $.Release.Namespace }}
  labels:
    {{- include "driftloop.tests.labels" . | nindent 4 }}
  annotations:
    helm.sh/hook: test
    helm.sh/hook-delete-policy: before-hook-creation
spec:
  restartPolicy: Never
  activeDeadlineSeconds: 600
  serviceAccountName: {{ include "driftloop.componentName" (dict "ctx" $ "component" "test") }}
  automountServiceAccountToken: false
  {{- include "driftloop.podNetwork" $ | nindent 2 }}
  {{- include "driftloop.imagePullSecrets" $ | nindent 2 }}
  securityContext:
    {{- include "driftloop.podSecurityContext" $ | nindent 4 }}
  containers:
    - name: check
      image: {{ include "driftloop.image" (dict "ctx" $ "image" $.Values.image.platform) }}
      imagePullPolicy: {{ $.Values.image.platform.pullPolicy }}
      securityContext:
        {{- include "driftloop.containerSecurityContext" $ | nindent 8 }}
      command: ["python", "/etc/driftloop-test/check.py", {{ .target | quote }}]
      env:
        - name: HOME
          value: /tmp
        - name: PYTHONDONTWRITEBYTECODE
          value: "1"
        {{- include (printf "driftloop.tests.env.%s" .target) $ | nindent 8 }}
      resources:
        {{- toYaml $.Values.tests.resources | nindent 8 }}
      volumeMounts:
        - name: tmp
          mountPath: /tmp
        - name: check
          mountPath: /etc/driftloop-test
          readOnly: true
  volumes:
    - name: tmp
      emptyDir: {}
    - name: check
      configMap:
        name: {{ include "driftloop.tests.configMapName" $ }}
        defaultMode: 0444
{{- end -}}

{{/* ------------------------------------------------ the checker */}}
{{- define "driftloop.tests.checkScript" -}}
"""`helm test` checks of the driftloop chart: ``python check.py <target>``.

Rendered from helm/driftloop/templates/tests/_check.tpl into the ConfigMap
<release>-driftloop-test-check; one test pod per component runs it with its target (postgresql,
redis, mlflow, prefect, serving) and its settings in DRIFTLOOP_TEST_* variables.

Each check prints one line: "ok <target>: <check> (<detail>)", "FAILED <target>: <check>: <why>"
or "skipped <target>: <check>: <why>" (a check that cannot apply, never a pass). A check is
retried until its own wait, within one budget for the pod (components may still be starting);
after the budget every remaining check still gets one try. Exit status 1 when a check failed.
Standard library only, and psycopg2 (in the platform image) for PostgreSQL.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

TIMEOUT_S = 10.0
#: Test pods call in-cluster addresses only: never through a proxy of the environment.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class Failed(Exception):
    """A definite wrong answer (the check is still retried until its wait is over)."""


class Skipped(Exception):
    """The check does not apply to this installation."""


Check = tuple[str, Callable[[], str], float]


class Settings:
    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.wait_s = float(env.get("DRIFTLOOP_TEST_WAIT_S", "150"))
        self.short_s = float(env.get("DRIFTLOOP_TEST_SHORT_WAIT_S", "30"))
        self.retry_s = float(env.get("DRIFTLOOP_TEST_RETRY_S", "3"))
        self.budget_s = float(env.get("DRIFTLOOP_TEST_BUDGET_S", "240"))

    def get(self, name: str) -> str:
        value = self.env.get(name)
        if value is None:
            raise Failed(f"{name} is not set (the chart renders it)")
        return value

    def flag(self, name: str) -> bool:
        return self.get(name).lower() == "true"


def one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit] + "..."


def reason(exc: BaseException) -> str:
    if isinstance(exc, Failed | Skipped):
        return one_line(str(exc))
    return one_line(f"{type(exc).__name__}: {exc}")


def run(target: str, checks: list[Check], settings: Settings) -> int:
    budget_end = time.monotonic() + settings.budget_s
    failed = 0
    for what, check, wait_s in checks:
        deadline = min(time.monotonic() + wait_s, budget_end)
        while True:
            try:
                detail = check()
            except Skipped as exc:
                print(f"skipped {target}: {what}: {reason(exc)}", flush=True)
                break
            except Exception as exc:  # every error is retried until the deadline
                if time.monotonic() + settings.retry_s >= deadline:
                    print(f"FAILED {target}: {what}: {reason(exc)}", flush=True)
                    failed += 1
                    break
                time.sleep(settings.retry_s)
            else:
                print(f"ok {target}: {what}" + (f" ({detail})" if detail else ""), flush=True)
                break
    return 1 if failed else 0


# ------------------------------------------------------------------------------------ HTTP


def http(
    method: str,
    url: str,
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
) -> tuple[int, bytes]:
    """(status, body); an HTTP error status is an answer, a connection error raises."""
    request = urllib.request.Request(url, data=body, method=method, headers=dict(headers or {}))
    try:
        with OPENER.open(request, timeout=TIMEOUT_S) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def text(body: bytes) -> str:
    return one_line(body.decode(errors="replace"), 200)


def expect(answer: tuple[int, bytes], status: int, what: str) -> bytes:
    code, body = answer
    if code != status:
        raise Failed(f"{what} answered HTTP {code}, expected {status}: {text(body)}")
    return body


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


# ------------------------------------------------------------------------------ PostgreSQL


def postgresql_checks(s: Settings) -> list[Check]:
    def connect(role: str, database_of: str) -> Any:
        import psycopg2

        params = {
            "host": s.get("DRIFTLOOP_TEST_PG_HOST"),
            "port": int(s.get("DRIFTLOOP_TEST_PG_PORT")),
            "user": s.get(f"DRIFTLOOP_TEST_PG_{role}_USER"),
            "password": s.get(f"DRIFTLOOP_TEST_PG_{role}_PASSWORD"),
            "dbname": s.get(f"DRIFTLOOP_TEST_PG_{database_of}_DB"),
        }
        return psycopg2.connect(connect_timeout=5, application_name="driftloop-test", **params)

    def select_one(role: str) -> Callable[[], str]:
        def check() -> str:
            conn = connect(role, role)
            try:
                with conn.cursor() as cur:
                    cur.execute("select 1")
                    row = cur.fetchone()
            finally:
                conn.close()
            if row != (1,):
                raise Failed(f"select 1 returned {row!r}")
            return "select 1"

        return check

    def mlflow_refused_on_prefect() -> str:
        import psycopg2

        try:
            conn = connect("MLFLOW", "PREFECT")
        except psycopg2.OperationalError as exc:
            text = str(exc)
            for marker in ("permission denied", "CONNECT privilege"):
                if marker in text:
                    return one_line(text[text.index(marker) :], 120)
            raise  # not an answer about privileges (e.g. the server is not up yet): retry
        conn.close()
        raise Failed("the MLflow user connected to the Prefect database")

    mlflow_db = s.env.get("DRIFTLOOP_TEST_PG_MLFLOW_DB", "?")
    prefect_db = s.env.get("DRIFTLOOP_TEST_PG_PREFECT_DB", "?")
    mlflow_user = s.env.get("DRIFTLOOP_TEST_PG_MLFLOW_USER", "?")
    prefect_user = s.env.get("DRIFTLOOP_TEST_PG_PREFECT_USER", "?")
    return [
        (f"user {mlflow_user} connects to database {mlflow_db}", select_one("MLFLOW"), s.wait_s),
        (
            f"user {prefect_user} connects to database {prefect_db}",
            select_one("PREFECT"),
            s.short_s,
        ),
        (
            f"user {mlflow_user} is refused on database {prefect_db}",
            mlflow_refused_on_prefect,
            s.short_s,
        ),
    ]


# ----------------------------------------------------------------------------------- Redis


def resp(*args: str) -> bytes:
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def redis_session(address: str, *commands: tuple[str, ...]) -> list[str]:
    """The one-line replies of ``commands`` sent on one new connection."""
    host, _, port = address.rpartition(":")
    with socket.create_connection((host, int(port)), timeout=TIMEOUT_S) as sock:
        replies = sock.makefile("rb")
        answers = []
        for command in commands:
            sock.sendall(resp(*command))
            answers.append(replies.readline().decode(errors="replace").rstrip("\r\n"))
    return answers


def redis_checks(s: Settings) -> list[Check]:
    def auth_ping() -> str:
        answers = redis_session(
            s.get("DRIFTLOOP_TEST_REDIS_ADDRESS"),
            ("AUTH", s.get("DRIFTLOOP_TEST_REDIS_PASSWORD")),
            ("PING",),
        )
        if answers != ["+OK", "+PONG"]:
            raise Failed(f"AUTH, PING answered {answers!r}")
        return "PONG"

    def refused_without_password() -> str:
        (answer,) = redis_session(s.get("DRIFTLOOP_TEST_REDIS_ADDRESS"), ("PING",))
        if not answer.startswith("-NOAUTH"):
            raise Failed(f"PING without a password answered {answer!r}")
        return one_line(answer[1:], 80)

    return [
        ("AUTH with the password, PING", auth_ping, s.wait_s),
        ("PING without the password is refused", refused_without_password, s.short_s),
    ]


# ---------------------------------------------------------------------------------- MLflow


def mlflow_checks(s: Settings) -> list[Check]:
    url = s.env.get("DRIFTLOOP_TEST_MLFLOW_URL", "").rstrip("/")
    model = s.env.get("DRIFTLOOP_TEST_MLFLOW_MODEL", "")
    if s.env.get("DRIFTLOOP_TEST_MLFLOW_PROVISIONED", "").lower() == "true":
        what = f"registered model {model}"
        api = "/api/2.0/mlflow/registered-models/get?" + urllib.parse.urlencode({"name": model})
    else:  # no grant to rely on: any authenticated user may search
        what = "registered model search"
        api = "/api/2.0/mlflow/registered-models/search?max_results=1"

    def health() -> str:
        expect(http("GET", url + "/health"), 200, "GET /health")
        return "GET /health 200"

    def anonymous_refused() -> str:
        if not s.flag("DRIFTLOOP_TEST_MLFLOW_AUTH"):
            raise Skipped("mlflow.auth.enabled=false")
        expect(http("GET", url + api), 401, "the API without credentials")
        return "401"

    def serving_user_reads() -> str:
        headers = {}
        if s.flag("DRIFTLOOP_TEST_MLFLOW_AUTH"):
            headers = basic(s.get("MLFLOW_TRACKING_USERNAME"), s.get("MLFLOW_TRACKING_PASSWORD"))
        expect(http("GET", url + api, headers), 200, "the API with the serving user")
        return "200"

    user = s.env.get("MLFLOW_TRACKING_USERNAME", "anonymous")
    return [
        ("server answers", health, s.wait_s),
        ("API without credentials is refused", anonymous_refused, s.short_s),
        (f"user {user} reads the {what}", serving_user_reads, s.short_s),
    ]


# --------------------------------------------------------------------------------- Prefect


def prefect_checks(s: Settings) -> list[Check]:
    api = s.env.get("DRIFTLOOP_TEST_PREFECT_API_URL", "").rstrip("/")
    pool = s.env.get("DRIFTLOOP_TEST_PREFECT_WORK_POOL", "")

    def auth() -> dict[str, str]:
        if not s.flag("DRIFTLOOP_TEST_PREFECT_AUTH"):
            return {}
        token = base64.b64encode(s.get("PREFECT_API_AUTH_STRING").encode()).decode()
        return {"Authorization": f"Basic {token}"}

    def health() -> str:
        expect(http("GET", api + "/health"), 200, "GET /api/health")
        return "GET /api/health 200"

    def anonymous_refused() -> str:
        if not s.flag("DRIFTLOOP_TEST_PREFECT_AUTH"):
            raise Skipped("prefect.auth.enabled=false")
        expect(http("GET", api + "/admin/version"), 401, "GET /api/admin/version without auth")
        return "401"

    def with_auth_string() -> str:
        body = expect(http("GET", api + "/admin/version", auth()), 200, "GET /api/admin/version")
        return "Prefect " + one_line(body.decode(errors="replace").strip('"'), 40)

    def pool_path() -> str:
        if not pool:
            raise Skipped("worker.enabled=false: no work pool to look at")
        return "/work_pools/" + urllib.parse.quote(pool, safe="")

    def pool_exists() -> str:
        body = expect(http("GET", api + pool_path(), auth()), 200, f"GET work pool {pool}")
        return "type " + str(json.loads(body).get("type"))

    def worker_heartbeat() -> str:
        headers = {**auth(), "Content-Type": "application/json"}
        answer = http("POST", api + pool_path() + "/workers/filter", headers, b"{}")
        workers = json.loads(expect(answer, 200, "POST workers/filter"))
        online = [w["name"] for w in workers if w.get("status") == "ONLINE"]
        if not online:
            beats = [w.get("last_heartbeat_time") for w in workers]
            raise Failed(f"{len(workers)} worker(s), none online (last heartbeats {beats})")
        return ", ".join(online[:3])

    return [
        ("server answers", health, s.wait_s),
        ("API without the auth string is refused", anonymous_refused, s.short_s),
        ("API with the auth string", with_auth_string, s.short_s),
        (f"work pool {pool or '-'} exists", pool_exists, s.wait_s),
        (f"a worker of {pool or '-'} sent a heartbeat", worker_heartbeat, s.wait_s),
    ]


# --------------------------------------------------------------------------------- serving


def serving_checks(s: Settings) -> list[Check]:
    url = s.env.get("DRIFTLOOP_TEST_SERVING_URL", "").rstrip("/")
    model = s.env.get("DRIFTLOOP_TEST_SERVING_MODEL", "")
    here = os.path.dirname(os.path.abspath(__file__))
    body_path = s.env.get("DRIFTLOOP_TEST_BODY", os.path.join(here, "inference-body.json"))
    infer = f"{url}/v2/models/{urllib.parse.quote(model, safe='')}/infer"
    json_type = {"Content-Type": "application/json"}

    def body() -> bytes:
        with open(body_path, "rb") as f:
            return f.read()

    served = {"champion": False}

    def ready() -> str:
        # A champion is served (OIP readiness), or the registry names none yet (a fresh
        # install: the replica readiness says so, and inference answers 503 itself). A champion
        # that exists but is not loaded fails (after the wait).
        code, answer = http("GET", url + "/v2/health/ready")
        if code == 200:
            health = json.loads(answer)
            if health.get("champion"):
                served["champion"] = True
                return f"{health.get('status')}, champion {health['champion']}"
        replica = json.loads(expect(http("GET", url + "/v2/health/replica"), 200, "replica"))
        return f"up, {replica.get('reason')}: nothing to serve until a model is trained"

    def anonymous_refused() -> str:
        if not s.flag("DRIFTLOOP_TEST_SERVING_AUTH"):
            raise Skipped("serving.auth.enabled=false")
        expect(http("POST", infer, json_type, body()), 401, "inference without a token")
        return "401"

    def predict() -> str:
        headers = dict(json_type)
        if s.flag("DRIFTLOOP_TEST_SERVING_AUTH"):
            token = s.env.get("DRIFTLOOP_TEST_PREDICT_TOKEN")
            if not token:
                raise Skipped("serving.auth.existingSecret holds no plain predict-token key")
            headers["Authorization"] = f"Bearer {token}"
        code, answer = http("POST", infer, headers, body())
        if code in (401, 403):
            raise Failed(f"the predict token was refused: HTTP {code} {text(answer)}")
        if not served["champion"]:
            expect((code, answer), 503, "inference before any champion")
            return "token accepted; 503 until a champion exists"
        outputs = json.loads(expect((code, answer), 200, "inference"))["outputs"]
        return "outputs " + ", ".join(f"{o['name']}={o['data'][0]}" for o in outputs)

    return [
        ("ready (with a champion, or none registered yet)", ready, s.wait_s),
        ("inference without a token is refused", anonymous_refused, s.short_s),
        (f"inference on {model} with the predict token", predict, s.short_s),
    ]


TARGETS: dict[str, Callable[[Settings], list[Check]]] = {
    "postgresql": postgresql_checks,
    "redis": redis_checks,
    "mlflow": mlflow_checks,
    "prefect": prefect_checks,
    "serving": serving_checks,
}


def main(argv: list[str], env: Mapping[str, str]) -> int:
    if len(argv) != 2 or argv[1] not in TARGETS:
        print("usage: check.py " + "|".join(TARGETS), file=sys.stderr)
        return 2
    settings = Settings(env)
    return run(argv[1], TARGETS[argv[1]](settings), settings)


if __name__ == "__main__":
    sys.exit(main(sys.argv, os.environ))
{{- end -}}
