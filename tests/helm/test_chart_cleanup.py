"""The pre-delete cleanup hook (templates/worker/cleanup-hook.yaml, script in
templates/worker/_cleanup.tpl): `helm uninstall` leaves no Job or Pod of the release behind.

The rendered hook objects are checked (hook phase, weights, delete policy, least-privilege RBAC,
hardened pod, NetworkPolicy, the host-network test mode), then the rendered script itself runs
for real, in a subprocess configured exactly as in the pod (in-cluster config: HTTPS to
KUBERNETES_SERVICE_HOST/PORT with the service account's token and CA files), against a small
in-process HTTPS server on 127.0.0.1 that implements the Kubernetes REST calls the script makes
(list, get and delete of Jobs and Pods). That server stands in for the API server, which cannot
run in `make test` (a real one-node cluster runs only in `make k8s-e2e`); it also stands in for
the garbage collector: a Job deleted with propagationPolicy Foreground or Background takes its
pods with it, as on a cluster (a Job deleted without one orphans them, also as on a cluster).
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import re
import ssl
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml
from chart_support import CHART, NEW_KUBE, OLD_KUBE, SCENARIOS

pytestmark = pytest.mark.helm

Doc = dict[str, Any]
Render = Callable[..., list[Doc]]
NAME = "rel-driftloop-cleanup"
HOOK_KINDS = ("ServiceAccount", "Role", "RoleBinding", "Job")
NS = "ml"
TOKEN = "fake-service-account-token"
SELECTOR = {"app.kubernetes.io/name": "driftloop", "app.kubernetes.io/instance": "rel"}
OTHER = {"app.kubernetes.io/name": "driftloop", "app.kubernetes.io/instance": "other"}


def cleanup_docs(docs: list[Doc]) -> dict[str, Doc]:
    """The cleanup objects of a render by kind (one each)."""
    found: dict[str, Doc] = {}
    for d in docs:
        if d["metadata"]["name"] == NAME:
            assert d["kind"] not in found, d["kind"]
            found[d["kind"]] = d
    return found


def hook_container(job: Doc) -> Doc:
    containers: list[Doc] = job["spec"]["template"]["spec"]["containers"]
    (container,) = containers
    return container


def env_values(container: Doc) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container["env"] if "value" in e}


# --------------------------------------------------------------------------- rendered objects


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_scenario_has_the_hook_and_its_network_policy(render: Render, scenario: str) -> None:
    found = cleanup_docs(render(scenario, NEW_KUBE))
    assert set(found) == {*HOOK_KINDS, "NetworkPolicy"}
    for kind in HOOK_KINDS:
        assert found[kind]["metadata"]["annotations"]["helm.sh/hook"] == "pre-delete", kind
    # The NetworkPolicy is a release object (still there when the pre-delete hook runs).
    assert "helm.sh/hook" not in (found["NetworkPolicy"]["metadata"].get("annotations") or {})


def test_hook_objects_exist_before_the_job_and_go_when_it_succeeds(render: Render) -> None:
    found = cleanup_docs(render("default", NEW_KUBE))
    weight = {
        kind: int(found[kind]["metadata"]["annotations"]["helm.sh/hook-weight"])
        for kind in HOOK_KINDS
    }
    assert weight["ServiceAccount"] < weight["RoleBinding"] < weight["Job"]
    assert weight["Role"] < weight["RoleBinding"]
    for kind in HOOK_KINDS:
        policy = found[kind]["metadata"]["annotations"]["helm.sh/hook-delete-policy"]
        assert policy.split(",") == ["before-hook-creation", "hook-succeeded"], kind


def test_hook_role_may_only_get_list_and_delete_jobs_and_pods(render: Render) -> None:
    docs = render("default", NEW_KUBE)
    found = cleanup_docs(docs)
    rules = found["Role"]["rules"]
    granted = {
        (group, resource, verb)
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    assert granted == {
        (group, resource, verb)
        for group, resource in (("batch", "jobs"), ("", "pods"))
        for verb in ("get", "list", "delete")
    }
    assert found["Role"]["metadata"]["namespace"] == NS
    binding = found["RoleBinding"]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": NAME,
    }
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": NAME, "namespace": NS}]
    assert not [d for d in docs if d["kind"] in ("ClusterRole", "ClusterRoleBinding")]


def test_hook_pod_is_hardened_and_uses_its_own_token(render: Render) -> None:
    job = cleanup_docs(render("default", NEW_KUBE))["Job"]
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    pod = job["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == NAME
    assert pod["automountServiceAccountToken"] is True
    assert pod["restartPolicy"] == "Never"
    assert "hostNetwork" not in pod
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    container = hook_container(job)
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert "add" not in security["capabilities"]
    assert container["resources"] == values["deploy"]["resources"]
    assert container["image"].startswith(values["image"]["platform"]["repository"] + ":")
    assert container["command"] == ["python", "-c"]
    assert "from kubernetes import" in container["args"][0]
    assert env_values(container) | {"HOME": "/tmp"} == {
        "HOME": "/tmp",
        "PYTHONDONTWRITEBYTECODE": "1",
        "CLEANUP_NAMESPACE": NS,
        "CLEANUP_RELEASE": "rel",
        "CLEANUP_CHART_NAME": "driftloop",
        "CLEANUP_JOB": NAME,
        "CLEANUP_TIMEOUT_SECONDS": str(values["cleanup"]["timeoutSeconds"]),
    }
    labels = job["spec"]["template"]["metadata"]["labels"]
    assert SELECTOR.items() <= labels.items()
    assert labels["app.kubernetes.io/component"] == "cleanup"


def test_host_network_mode_reaches_the_api_server_on_the_node(render: Render) -> None:
    docs = render("default", OLD_KUBE, "--set", "hostNetwork.enabled=true,probes.mode=exec")
    job = cleanup_docs(docs)["Job"]
    pod = job["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is True
    assert pod["dnsPolicy"] == "ClusterFirstWithHostNet"
    env = env_values(hook_container(job))
    assert env["KUBERNETES_SERVICE_HOST"] == "127.0.0.1"
    assert env["KUBERNETES_SERVICE_PORT"] == "16443"
    # The default install leaves them to the kubelet (the kubernetes Service).
    default_env = env_values(hook_container(cleanup_docs(render("default", NEW_KUBE))["Job"]))
    assert "KUBERNETES_SERVICE_HOST" not in default_env


def test_hook_network_policy_allows_only_the_api_server(render: Render) -> None:
    docs = render("default", NEW_KUBE)
    found = cleanup_docs(docs)
    policy = found["NetworkPolicy"]
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    pod_labels = found["Job"]["spec"]["template"]["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "cleanup"
    assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    assert policy["spec"]["ingress"] == []
    assert policy["spec"]["egress"] == values["networkPolicy"]["apiServerEgress"]
    # No other allow policy of a component selects the hook pod (DNS and default-deny select
    # every pod of the release).
    selecting = {
        d["metadata"]["name"]
        for d in docs
        if d["kind"] == "NetworkPolicy"
        and d["spec"]["podSelector"].get("matchLabels", {}).items() <= pod_labels.items()
        and not d["spec"]["podSelector"].get("matchExpressions")
    }
    assert selecting == {NAME, "rel-driftloop-default-deny", "rel-driftloop-allow-dns"}


def test_cleanup_can_be_turned_off(render: Render) -> None:
    docs = render("default", NEW_KUBE, "--set", "cleanup.enabled=false")
    assert cleanup_docs(docs) == {}
    assert not [
        d
        for d in docs
        if (d["metadata"].get("labels") or {}).get("app.kubernetes.io/component") == "cleanup"
    ]


def test_hook_objects_validate_on_kubernetes_1_20(
    render: Render, validate_1_20: Callable[[Doc], list[str]]
) -> None:
    found = cleanup_docs(
        render("default", OLD_KUBE, "--set", "hostNetwork.enabled=true,probes.mode=exec")
    )
    assert [e for doc in found.values() for e in validate_1_20(doc)] == []


def test_install_hook_jobs_are_removed_when_they_succeed(render: Render) -> None:
    docs = render("default", NEW_KUBE)
    hooks = {
        d["metadata"]["name"]: d["metadata"]["annotations"]
        for d in docs
        if d["kind"] == "Job"
        and "helm.sh/hook" in (d["metadata"].get("annotations") or {})
        and d["metadata"]["name"] != NAME
    }
    # The MLflow provision Job is a release object (see test_chart_security), not a hook.
    assert set(hooks) == {"rel-driftloop-deploy"}
    for name, notes in hooks.items():
        assert notes["helm.sh/hook"] == "post-install,post-upgrade", name
        policy = notes["helm.sh/hook-delete-policy"].split(",")
        assert policy == ["before-hook-creation", "hook-succeeded"], name


# --------------------------------------------------------- the script against a stand-in API


@dataclass
class FakeCluster:
    """Objects of the stand-in API server: (kind, namespace, name) -> object."""

    objects: dict[tuple[str, str, str], Doc] = field(default_factory=dict)
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    # (method, kind) -> (HTTP status, reason, message): the answer of every such call.
    failures: dict[tuple[str, str], tuple[int, str, str]] = field(default_factory=dict)
    # Objects a finalizer keeps after their delete (never gone).
    stuck: set[tuple[str, str, str]] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, obj: Doc) -> None:
        kind = "jobs" if obj["kind"] == "Job" else "pods"
        self.objects[(kind, obj["metadata"]["namespace"], obj["metadata"]["name"])] = obj

    def names(self, kind: str, namespace: str = NS) -> set[str]:
        return {n for (k, ns, n) in self.objects if k == kind and ns == namespace}


def job(name: str, labels: dict[str, str], pod_labels: dict[str, str], ns: str = NS) -> Doc:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": ns, "uid": f"uid-{name}", "labels": labels},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"labels": pod_labels},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "main", "image": "driftloop-platform:dev"}],
                },
            },
        },
    }


def pod(name: str, labels: dict[str, str], owner: tuple[str, str] | None, ns: str = NS) -> Doc:
    meta: Doc = {"name": name, "namespace": ns, "uid": f"uid-{name}", "labels": labels}
    if owner is not None:
        kind, owner_name = owner
        meta["ownerReferences"] = [
            {
                "apiVersion": "batch/v1" if kind == "Job" else "apps/v1",
                "kind": kind,
                "name": owner_name,
                "uid": f"uid-{owner_name}",
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": {"containers": [{"name": "main", "image": "driftloop-platform:dev"}]},
    }


PATH = re.compile(r"^/(?:apis/batch/v1|api/v1)/namespaces/([^/]+)/(jobs|pods)(?:/([^/]+))?$")


def selected(labels: dict[str, str], selector: str) -> bool:
    wanted = dict(part.split("=", 1) for part in selector.split(",") if part)
    return wanted.items() <= labels.items()


def make_handler(cluster: FakeCluster) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def answer(self, code: int, body: Doc) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def status(self, code: int, reason: str, message: str) -> None:
            body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure"}
            self.answer(code, body | {"message": message, "reason": reason, "code": code})

        def handle_call(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}") if length else {}
            url = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(url.query).items()}
            if body.get("propagationPolicy"):
                query.setdefault("propagationPolicy", body["propagationPolicy"])
            with cluster.lock:
                cluster.requests.append((self.command, url.path, query))
            scheme, _, token = (self.headers.get("Authorization") or "").partition(" ")
            if scheme.lower() != "bearer" or token != TOKEN:  # the scheme is case-insensitive
                return self.status(401, "Unauthorized", "Unauthorized")
            match = PATH.match(url.path)
            if not match:
                return self.status(404, "NotFound", f"no route {url.path}")
            ns, kind, name = match.groups()
            if (self.command, kind) in cluster.failures:
                return self.status(*cluster.failures[(self.command, kind)])
            with cluster.lock:
                if name is None and self.command == "GET":
                    items = [
                        obj
                        for (k, n, _), obj in sorted(cluster.objects.items())
                        if k == kind
                        and n == ns
                        and selected(
                            obj["metadata"].get("labels") or {}, query.get("labelSelector", "")
                        )
                    ]
                    list_kind = "JobList" if kind == "jobs" else "PodList"
                    version = "batch/v1" if kind == "jobs" else "v1"
                    return self.answer(
                        200,
                        {
                            "kind": list_kind,
                            "apiVersion": version,
                            "metadata": {"resourceVersion": "1"},
                            "items": items,
                        },
                    )
                key = (kind, ns, name or "")
                obj = cluster.objects.get(key)
                if obj is None:
                    return self.status(404, "NotFound", f'{kind} "{name}" not found')
                if self.command == "GET":
                    return self.answer(200, obj)
                if self.command != "DELETE":
                    return self.status(405, "MethodNotAllowed", self.command)
                if key in cluster.stuck:
                    obj["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
                    return self.answer(200, obj)
                del cluster.objects[key]
                # The garbage collector: a Job's pods go with it unless it is orphaned.
                if kind == "jobs" and query.get("propagationPolicy") in (
                    "Foreground",
                    "Background",
                ):
                    for dependent in [
                        k
                        for k, o in cluster.objects.items()
                        if k[0] == "pods"
                        and k[1] == ns
                        and any(
                            ref["kind"] == "Job" and ref["name"] == name
                            for ref in o["metadata"].get("ownerReferences") or []
                        )
                    ]:
                        del cluster.objects[dependent]
                return self.answer(200, {"kind": "Status", "apiVersion": "v1", "status": "Success"})

        do_GET = do_DELETE = do_POST = do_PUT = do_PATCH = handle_call

    return Handler


@dataclass
class Tls:
    ca: Path
    cert: Path
    key: Path


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    """A CA and a serving certificate for 127.0.0.1 (as an API server's)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    folder = tmp_path_factory.mktemp("tls")
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake-cluster-ca")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = Tls(folder / "ca.crt", folder / "tls.crt", folder / "tls.key")
    paths.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    paths.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


@pytest.fixture
def api(tls: Tls) -> Iterator[tuple[FakeCluster, int]]:
    """The stand-in API server on 127.0.0.1 (HTTPS), stopped after the test."""
    cluster = FakeCluster()
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(cluster))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls.cert, tls.key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, name="fake-kube-api", daemon=True)
    thread.start()
    try:
        yield cluster, server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
    assert not thread.is_alive()


@pytest.fixture
def service_account(tls: Tls, tmp_path: Path) -> Path:
    """The files Kubernetes mounts into the pod at /var/run/secrets/kubernetes.io/serviceaccount."""
    folder = tmp_path / "serviceaccount"
    folder.mkdir()
    (folder / "token").write_text(TOKEN)
    (folder / "ca.crt").write_bytes(tls.ca.read_bytes())
    (folder / "namespace").write_text(NS)
    return folder


@dataclass
class Run:
    code: int
    out: list[str]
    err: str


def run_hook(render: Render, port: int, **env: str) -> Run:
    """Run the rendered hook script with the rendered env, as its pod would (in-cluster config
    from KUBERNETES_SERVICE_HOST/PORT and the service-account files)."""
    container = hook_container(cleanup_docs(render("default", NEW_KUBE))["Job"])
    environment = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "NO_PROXY": "127.0.0.1",
        **env_values(container),
        "KUBERNETES_SERVICE_HOST": "127.0.0.1",
        "KUBERNETES_SERVICE_PORT": str(port),
        **env,
    }
    proc = subprocess.run(
        [sys.executable, "-c", container["args"][0]],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return Run(proc.returncode, proc.stdout.splitlines(), proc.stderr)


def populate(cluster: FakeCluster) -> None:
    prefect = {"prefect.io/flow-run-id": "0f1e", "app.kubernetes.io/part-of": "driftloop"}
    # This release: a flow-run Job and its pod, labelled as prefect-kubernetes leaves them (seen
    # live): the Job has only Prefect's labels, and on the pod template Prefect has overwritten
    # app.kubernetes.io/name with the flow's name; the chart's driftloop.io/release survives.
    flow_pod_labels = SELECTOR | {
        "app.kubernetes.io/component": "flow-run",
        "app.kubernetes.io/name": "train",
        "driftloop.io/release": "rel",
    }
    cluster.add(job("train-abc12", prefect, flow_pod_labels))
    cluster.add(
        pod(
            "train-abc12-x7k", flow_pod_labels | {"job-name": "train-abc12"}, ("Job", "train-abc12")
        )
    )
    # This release: a distributed training Job (labels on the Job too) without pods yet.
    training = SELECTOR | {"app.kubernetes.io/component": "training"}
    cluster.add(job("ddp-run-1", training, training))
    # This release: a failed post-install hook Job and its pod, a `helm test` pod (no owner).
    deploy = SELECTOR | {"app.kubernetes.io/component": "deploy"}
    cluster.add(job("rel-driftloop-deploy", deploy, deploy))
    cluster.add(pod("rel-driftloop-deploy-5qz", deploy, ("Job", "rel-driftloop-deploy")))
    test = SELECTOR | {"app.kubernetes.io/component": "test"}
    cluster.add(pod("rel-driftloop-test-redis", test, None))
    # This release, kept: a serving pod (its Deployment is Helm's), the hook's own Job and pod.
    serving = SELECTOR | {"app.kubernetes.io/component": "serving"}
    cluster.add(pod("rel-driftloop-serving-6d-abc", serving, ("ReplicaSet", "rel-serving-6d")))
    own = SELECTOR | {"app.kubernetes.io/component": "cleanup"}
    cluster.add(job(NAME, own, own))
    cluster.add(pod(f"{NAME}-h2m", own, ("Job", NAME)))
    # Another release in the same namespace, kept: its flow-run Job, its pod and a test pod.
    other_pod = OTHER | {
        "app.kubernetes.io/component": "flow-run",
        "app.kubernetes.io/name": "train",
        "driftloop.io/release": "other",
    }
    cluster.add(job("train-other", prefect, other_pod))
    cluster.add(pod("train-other-p1", other_pod, ("Job", "train-other")))
    cluster.add(
        pod("other-driftloop-test-redis", OTHER | {"app.kubernetes.io/component": "test"}, None)
    )
    # Kept: another chart installed under the same release name, and unlabelled objects.
    foreign = {"app.kubernetes.io/name": "postgres", "app.kubernetes.io/instance": "rel"}
    cluster.add(job("rel-postgres-backup", foreign, foreign))
    cluster.add(job("someones-job", {}, {}))
    cluster.add(pod("someones-pod", {}, None))
    # Kept: this release's labels in another namespace.
    cluster.add(job("train-abc12", prefect, flow_pod_labels, ns="elsewhere"))


def test_script_deletes_only_this_releases_jobs_and_pods(
    render: Render, api: tuple[FakeCluster, int], service_account: Path
) -> None:
    cluster, port = api
    populate(cluster)
    run = run_hook(render, port, CLEANUP_SERVICE_ACCOUNT_DIR=str(service_account))
    assert run.code == 0, run.err
    assert cluster.names("jobs") == {
        NAME,
        "train-other",
        "rel-postgres-backup",
        "someones-job",
    }
    assert cluster.names("pods") == {
        "rel-driftloop-serving-6d-abc",
        f"{NAME}-h2m",
        "train-other-p1",
        "other-driftloop-test-redis",
        "someones-pod",
    }
    assert cluster.names("jobs", "elsewhere") == {"train-abc12"}
    assert sorted(run.out[:-1]) == [
        "deleted job/ddp-run-1",
        "deleted job/rel-driftloop-deploy",
        "deleted job/train-abc12",
        "deleted pod/rel-driftloop-deploy-5qz (with job/rel-driftloop-deploy)",
        "deleted pod/rel-driftloop-test-redis",
        "deleted pod/train-abc12-x7k (with job/train-abc12)",
    ]
    assert run.out[-1] == (
        "cleanup of release rel in namespace ml: 6 deleted (3 jobs, 3 pods), none left"
    )
    # Deletes name objects of this namespace only, Jobs with a policy that takes their pods.
    deletes = [(path, query) for method, path, query in cluster.requests if method == "DELETE"]
    assert len(deletes) == 4
    for path, query in deletes:
        assert path.startswith(f"/apis/batch/v1/namespaces/{NS}/jobs/") or path.startswith(
            f"/api/v1/namespaces/{NS}/pods/"
        ), path
        if "/jobs/" in path:
            assert query.get("propagationPolicy") in ("Foreground", "Background"), path
    pod_lists = [q for m, p, q in cluster.requests if m == "GET" and p.endswith("/pods")]
    assert pod_lists
    assert all(selected(SELECTOR, q["labelSelector"]) for q in pod_lists)
    assert all(not selected(OTHER, q["labelSelector"]) for q in pod_lists)


def test_script_with_nothing_to_delete_reports_zero(
    render: Render, api: tuple[FakeCluster, int], service_account: Path
) -> None:
    cluster, port = api
    cluster.add(job("train-other", {}, OTHER))
    run = run_hook(render, port, CLEANUP_SERVICE_ACCOUNT_DIR=str(service_account))
    assert run.code == 0, run.err
    assert run.out == [
        "cleanup of release rel in namespace ml: 0 deleted (0 jobs, 0 pods), none left"
    ]
    assert cluster.names("jobs") == {"train-other"}


def test_script_fails_with_one_line_on_an_api_error(
    render: Render, api: tuple[FakeCluster, int], service_account: Path
) -> None:
    cluster, port = api
    populate(cluster)
    before = dict(cluster.objects)
    cluster.failures[("GET", "jobs")] = (
        403,
        "Forbidden",
        'jobs.batch is forbidden: User "system:serviceaccount:ml:rel-driftloop-cleanup" '
        'cannot list resource "jobs" in API group "batch" in the namespace "ml"',
    )
    run = run_hook(render, port, CLEANUP_SERVICE_ACCOUNT_DIR=str(service_account))
    assert run.code == 1
    lines = run.err.strip().splitlines()
    assert len(lines) == 1, run.err
    assert lines[0].startswith("cleanup of release rel failed: list jobs: HTTP 403 Forbidden: ")
    assert 'cannot list resource "jobs"' in lines[0]
    assert cluster.objects == before


def test_script_fails_when_an_object_is_not_gone_in_time(
    render: Render, api: tuple[FakeCluster, int], service_account: Path
) -> None:
    cluster, port = api
    populate(cluster)
    cluster.stuck.add(("jobs", NS, "ddp-run-1"))
    run = run_hook(
        render,
        port,
        CLEANUP_SERVICE_ACCOUNT_DIR=str(service_account),
        CLEANUP_TIMEOUT_SECONDS="1",
    )
    assert run.code == 1
    lines = run.err.strip().splitlines()
    assert lines == ["cleanup of release rel failed: still present after 1 s: job/ddp-run-1"]
    assert "deleted job/ddp-run-1" in run.out
    assert "ddp-run-1" in cluster.names("jobs")


def test_script_without_a_service_account_uses_kubeconfig(
    render: Render, api: tuple[FakeCluster, int], tls: Tls, tmp_path: Path
) -> None:
    cluster, port = api
    cluster.add(
        pod("rel-driftloop-test-mlflow", SELECTOR | {"app.kubernetes.io/component": "test"}, None)
    )
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "fake",
                        "cluster": {
                            "server": f"https://127.0.0.1:{port}",
                            "certificate-authority": str(tls.ca),
                        },
                    }
                ],
                "users": [{"name": "fake", "user": {"token": TOKEN}}],
                "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
                "current-context": "fake",
            }
        )
    )
    run = run_hook(
        render,
        port,
        CLEANUP_SERVICE_ACCOUNT_DIR=str(tmp_path / "no-service-account"),
        KUBECONFIG=str(kubeconfig),
        KUBERNETES_SERVICE_PORT="1",  # unused: no token mounted
    )
    assert run.code == 0, run.err
    assert run.out[0] == "deleted pod/rel-driftloop-test-mlflow"
    assert cluster.names("pods") == set()


def test_flow_run_pods_carry_a_release_label_prefect_leaves_alone(render: Render) -> None:
    """prefect-kubernetes overwrites app.kubernetes.io/name on a flow run's pod template with the
    flow's name (live in `make k8s-e2e`, `helm uninstall` left every flow-run Job behind), so
    the hook needs a label of the chart's own to find them."""
    docs = render("default", NEW_KUBE)
    (cm,) = [
        d
        for d in docs
        if d["kind"] == "ConfigMap" and "base-job-template.json" in d.get("data", {})
    ]
    template = json.loads(cm["data"]["base-job-template.json"])
    manifest = template["job_configuration"]["job_manifest"]
    labels = manifest["spec"]["template"]["metadata"]["labels"]
    release = labels["app.kubernetes.io/instance"]
    assert labels["driftloop.io/release"] == release
