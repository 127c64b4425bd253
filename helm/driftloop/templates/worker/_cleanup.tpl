{{/* The pre-delete cleanup script (templates/worker/cleanup-hook.yaml runs it with `python -c`
in the platform image, which ships the `kubernetes` client). It deletes every Job and Pod of this
release that Helm does not delete itself: Jobs whose own labels or whose pod-template labels carry
the release's selector labels (flow runs, distributed training, hook Jobs, CronJob runs), and
Pods with those labels that no Deployment/StatefulSet owns (`helm test` pods, pods of Jobs).
Jobs are deleted with propagationPolicy Foreground (their pods go first); Pods of a deleted Job go
with it. It then waits (CLEANUP_TIMEOUT_SECONDS) until every one is gone, prints one line per
object and a count, and repeats (3 rounds at most) while new ones show up (a flow run the worker
started meanwhile). Exit 1 with one line on an API error or when something is still there.
Configuration (env): CLEANUP_NAMESPACE, CLEANUP_RELEASE, CLEANUP_CHART_NAME, CLEANUP_JOB (its own
Job, never deleted); the API: the service account's token and CA in
CLEANUP_SERVICE_ACCOUNT_DIR (default: the pod's mount) with KUBERNETES_SERVICE_HOST/PORT, or
KUBECONFIG when that folder has no token (running it by hand). */}}
{{- define "driftloop.cleanup.script" -}}
import json
import os
import sys
import time
from pathlib import Path

from kubernetes import client, config
from kubernetes.client.rest import ApiException
from kubernetes.config.incluster_config import InClusterConfigLoader

ENV = os.environ
NAMESPACE = ENV["CLEANUP_NAMESPACE"]
RELEASE = ENV["CLEANUP_RELEASE"]
SELECTOR = {
    "app.kubernetes.io/name": ENV["CLEANUP_CHART_NAME"],
    "app.kubernetes.io/instance": RELEASE,
}
# Flow-run pods: prefect-kubernetes overwrites app.kubernetes.io/name with the flow's name on the
# pod template (found live by `make k8s-e2e`: uninstall left every flow-run Job), so the chart's
# job template also marks them with this label, which Prefect leaves alone.
RELEASE_LABEL = {"driftloop.io/release": RELEASE, "app.kubernetes.io/instance": RELEASE}
OWN_JOB = ENV["CLEANUP_JOB"]
TIMEOUT_S = float(ENV.get("CLEANUP_TIMEOUT_SECONDS", "120"))
SA_DIR = Path(ENV.get("CLEANUP_SERVICE_ACCOUNT_DIR", "/var/run/secrets/kubernetes.io/serviceaccount"))
POLL_S = 2.0
ROUNDS = 3


class Failed(Exception):
    pass


def one_line(text):
    return " ".join(str(text).split())


def api(what, call, *args, **kwargs):
    """The JSON answer of call(*args, **kwargs) (not parsed into the client's models, so any client
    version reads any API version's objects); None when the object does not exist (404)."""
    try:
        return json.loads(call(*args, _preload_content=False, **kwargs).data or b"null")
    except ApiException as exc:
        if exc.status == 404:
            return None
        try:
            detail = json.loads(exc.body)["message"]
        except Exception:
            detail = exc.body or ""
        raise Failed(f"{what}: HTTP {exc.status} {exc.reason}: {one_line(detail)[:300]}") from None


def configure():
    token = SA_DIR / "token"
    if token.is_file():  # in the pod: KUBERNETES_SERVICE_HOST/PORT + the service account
        InClusterConfigLoader(token_filename=str(token), cert_filename=str(SA_DIR / "ca.crt")).load_and_set()
    else:
        config.load_kube_config()


def ours(meta):
    labels = (meta or {}).get("labels") or {}
    return any(
        all(labels.get(key) == value for key, value in wanted.items())
        for wanted in (SELECTOR, RELEASE_LABEL)
    )


def find(batch, core):
    """Jobs (names) and Pods ((name, owning Job or None)) of this release to delete."""
    jobs = []
    for job in api("list jobs", batch.list_namespaced_job, NAMESPACE)["items"]:
        template = ((job.get("spec") or {}).get("template") or {}).get("metadata")
        name = job["metadata"]["name"]
        if name != OWN_JOB and (ours(job["metadata"]) or ours(template)):
            jobs.append(name)
    pods = []
    selector = f"app.kubernetes.io/instance={RELEASE}"  # both label sets carry it; ours() decides
    for pod in api("list pods", core.list_namespaced_pod, NAMESPACE, label_selector=selector)["items"]:
        refs = pod["metadata"].get("ownerReferences") or []
        owner = next((ref for ref in refs if ref.get("controller")), None)
        # Pods of a Deployment or StatefulSet go with it when Helm deletes it.
        if not ours(pod["metadata"]) or (owner is not None and owner["kind"] != "Job"):
            continue
        if owner is not None and owner["name"] == OWN_JOB:
            continue
        pods.append((pod["metadata"]["name"], owner["name"] if owner is not None else None))
    return jobs, pods


def exists(batch, core, kind, name):
    read = batch.read_namespaced_job if kind == "job" else core.read_namespaced_pod
    return api(f"get {kind}/{name}", read, name, NAMESPACE) is not None


def main():
    configure()
    batch, core = client.BatchV1Api(), client.CoreV1Api()
    deadline = time.monotonic() + TIMEOUT_S
    deleted = []
    for _ in range(ROUNDS):
        jobs, pods = find(batch, core)
        if not jobs and not pods:
            break
        this_round = []
        for name in jobs:
            api(f"delete job/{name}", batch.delete_namespaced_job, name, NAMESPACE, propagation_policy="Foreground")
            print(f"deleted job/{name}", flush=True)
            this_round.append(("job", name))
        for name, job in pods:
            if job in jobs:
                print(f"deleted pod/{name} (with job/{job})", flush=True)
            else:
                api(f"delete pod/{name}", core.delete_namespaced_pod, name, NAMESPACE, propagation_policy="Background")
                print(f"deleted pod/{name}", flush=True)
            this_round.append(("pod", name))
        deleted += this_round
        pending = [item for item in this_round if exists(batch, core, *item)]
        while pending:
            if time.monotonic() >= deadline:
                left = ", ".join(f"{kind}/{name}" for kind, name in pending)
                raise Failed(f"still present after {TIMEOUT_S:g} s: {left}")
            time.sleep(POLL_S)
            pending = [item for item in pending if exists(batch, core, *item)]
    jobs = sum(kind == "job" for kind, _ in deleted)
    print(
        f"cleanup of release {RELEASE} in namespace {NAMESPACE}: {len(deleted)} deleted "
        f"({jobs} jobs, {len(deleted) - jobs} pods), none left",
        flush=True,
    )


try:
    main()
except Exception as exc:
    what = str(exc) if isinstance(exc, Failed) else f"{type(exc).__name__}: {exc}"
    sys.exit(f"cleanup of release {ENV.get('CLEANUP_RELEASE', '?')} failed: {one_line(what)}")
{{- end -}}
