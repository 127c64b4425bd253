"""The chart's host-network test mode (values ``hostNetwork``, used by `make k8s-e2e` through
scripts/k8s-local/values-k8s-local.yaml): every pod of the release on the node's network, each
server bound to 127.0.0.1 at its own port, every client pointed there, nothing that needs
kube-proxy, a CNI or cluster DNS. And the mode never leaks into a normal install."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_support import CHART, OLD_API_VERSIONS, OLD_KUBE, ROOT, run_helm
from test_chart_policy import base_job_template, pods

pytestmark = pytest.mark.helm

Doc = dict[str, Any]
VALUES = ROOT / "scripts" / "k8s-local" / "values-k8s-local.yaml"
DEFAULTS = yaml.safe_load((CHART / "values.yaml").read_text())["hostNetwork"]
PORTS: dict[str, int] = DEFAULTS["ports"]


def _render(helm: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    args = ["template", "driftloop", str(CHART), "-n", "e2e", "-f", str(VALUES)]
    args += ["--kube-version", OLD_KUBE]
    for api in OLD_API_VERSIONS:
        args += ["--api-versions", api]
    return run_helm(helm, *args, *extra)


@pytest.fixture(scope="module")
def docs(helm_bin: Path) -> list[Doc]:
    proc = _render(helm_bin)
    assert proc.returncode == 0, proc.stderr
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def _env(container: Doc) -> dict[str, str]:
    return {e["name"]: e.get("value", "<secret>") for e in container.get("env") or []}


def _one(docs: list[Doc], kind: str, suffix: str) -> Doc:
    (found,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"].endswith(suffix)]
    return found


def _container(doc: Doc) -> Doc:
    return doc["spec"]["template"]["spec"]["containers"][0]


def test_the_e2e_values_turn_every_component_on(docs: list[Doc]) -> None:
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    for kind, name in [
        ("StatefulSet", "driftloop-postgresql"),
        ("StatefulSet", "driftloop-redis"),
        ("Deployment", "driftloop-mlflow"),
        ("Deployment", "driftloop-prefect-server"),
        ("Deployment", "driftloop-prefect-worker"),
        ("Deployment", "driftloop-serving"),
        ("Job", "driftloop-deploy"),
        ("PersistentVolumeClaim", "driftloop-state"),
    ]:
        assert (kind, name) in kinds, f"{kind}/{name} missing from the e2e install"


def test_every_pod_is_on_the_host_network(docs: list[Doc]) -> None:
    found = pods(docs)
    assert len(found) >= 8
    for pod in found:
        assert pod.spec.get("hostNetwork") is True, pod.where
        assert pod.spec.get("dnsPolicy") == "ClusterFirstWithHostNet", pod.where


def test_servers_bind_loopback_on_distinct_ports(docs: list[Doc]) -> None:
    assert len(set(PORTS.values())) == len(PORTS), "two components share a port"
    mlflow = _container(_one(docs, "Deployment", "-mlflow"))
    assert "--host=127.0.0.1" in mlflow["args"]
    assert f"--port={PORTS['mlflow']}" in mlflow["args"]
    prefect = _container(_one(docs, "Deployment", "-prefect-server"))
    assert prefect["args"][-4:] == ["--host", "127.0.0.1", "--port", str(PORTS["prefect"])]
    assert _env(prefect)["PREFECT_SERVER_API_HOST"] == "127.0.0.1"
    pg = _container(_one(docs, "StatefulSet", "-postgresql"))
    assert "listen_addresses=127.0.0.1" in pg["args"]
    assert _env(pg)["PGPORT"] == str(PORTS["postgresql"])
    redis = _container(_one(docs, "StatefulSet", "-redis"))
    assert f"--port {PORTS['redis']} --bind 127.0.0.1" in redis["args"][0]
    serving = _container(_one(docs, "Deployment", "-serving"))
    env = _env(serving)
    assert env["DRIFTLOOP_SERVING__HOST"] == "127.0.0.1"
    assert env["DRIFTLOOP_SERVING__PORT"] == str(PORTS["serving"])
    assert env["DRIFTLOOP_SERVING__REUSE_PORT"] == "true"
    # A declared port on a hostNetwork pod is a host port: a second replica could not schedule.
    assert "ports" not in serving
    worker = _container(_one(docs, "Deployment", "-prefect-worker"))
    assert _env(worker)["PREFECT_WORKER_WEBSERVER_PORT"] == str(PORTS["workerHealth"])
    assert str(PORTS["workerHealth"]) in worker["livenessProbe"]["exec"]["command"][-1]


def test_probes_call_the_ports_the_servers_listen_on(docs: list[Doc]) -> None:
    for suffix, port in [("-mlflow", "mlflow"), ("-prefect-server", "prefect")]:
        c = _container(_one(docs, "Deployment", suffix))
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            command = c[probe]["exec"]["command"][-1]
            assert f"http://127.0.0.1:{PORTS[port]}/" in command, (suffix, probe)


def test_serving_probes_ask_their_own_replica_not_the_shared_port(docs: list[Doc]) -> None:
    """Replicas share the port (SO_REUSEPORT): a TCP probe would judge whichever replica the
    kernel picks, so a cold surge pod could fail the warm ones during a rolling update (seen:
    `helm upgrade` in `make k8s-e2e` left 0 ready). Each probe asks its replica's own socket."""
    c = _container(_one(docs, "Deployment", "-serving"))
    sock = _env(c)["DRIFTLOOP_SERVING__PROBE_SOCKET"]
    assert sock.startswith("/tmp/")  # the pod's own emptyDir: no two replicas share it
    paths = {}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        command = c[probe]["exec"]["command"]
        assert command[:5] == ["python", "-m", "serving.probe", "--socket", sock], probe
        assert not any("127.0.0.1" in part for part in command), probe
        paths[probe] = command[-1]
    assert paths["readinessProbe"] == "/v2/health/replica"
    assert paths["livenessProbe"] == "/v2/health/live"


def test_clients_are_pointed_at_loopback(docs: list[Doc]) -> None:
    serving = _env(_container(_one(docs, "Deployment", "-serving")))
    assert serving["DRIFTLOOP_MLFLOW__TRACKING_URI"] == f"http://127.0.0.1:{PORTS['mlflow']}"
    assert serving["PREFECT_API_URL"] == f"http://127.0.0.1:{PORTS['prefect']}/api"
    assert serving["DRIFTLOOP_FEATURES__REDIS_CONNECTION"].startswith(
        f"127.0.0.1:{PORTS['redis']},"
    )
    mlflow = _env(_container(_one(docs, "Deployment", "-mlflow")))
    assert f"@127.0.0.1:{PORTS['postgresql']}/" in mlflow["MLFLOW_BACKEND_STORE_URI"]
    prefect = _env(_container(_one(docs, "Deployment", "-prefect-server")))
    assert f"@127.0.0.1:{PORTS['postgresql']}/" in prefect["PREFECT_API_DATABASE_CONNECTION_URL"]
    assert prefect["PREFECT_UI_API_URL"] == f"http://127.0.0.1:{PORTS['prefect']}/api"
    job = base_job_template(docs)["job_configuration"]["job_manifest"]["spec"]["template"]
    job_env = _env(job["spec"]["containers"][0])
    assert job_env["PREFECT_API_URL"] == f"http://127.0.0.1:{PORTS['prefect']}/api"
    assert job["spec"]["hostNetwork"] is True


def test_the_worker_reaches_the_api_server_without_the_kubernetes_service(docs: list[Doc]) -> None:
    env = _env(_container(_one(docs, "Deployment", "-prefect-worker")))
    assert env["KUBERNETES_SERVICE_HOST"] == DEFAULTS["apiServer"]["host"]
    assert env["KUBERNETES_SERVICE_PORT"] == str(DEFAULTS["apiServer"]["port"])


def test_single_port_servers_are_replaced_not_surged(docs: list[Doc]) -> None:
    """A surge pod of a rolling update could not bind the port its predecessor holds."""
    for suffix in ("-mlflow", "-prefect-server", "-prefect-worker"):
        assert _one(docs, "Deployment", suffix)["spec"]["strategy"]["type"] == "Recreate", suffix
    serving = _one(docs, "Deployment", "-serving")["spec"]["strategy"]
    assert serving["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}


def test_the_e2e_images_are_local_and_never_pulled(docs: list[Doc]) -> None:
    for pod in pods(docs):
        for c in pod.containers():
            assert c["imagePullPolicy"] == "Never", (pod.where, c["name"])
            assert not c["image"].startswith("docker.io/"), (pod.where, c["image"])


def test_test_mode_is_refused_with_an_ingress(helm_bin: Path) -> None:
    proc = _render(
        helm_bin,
        "--set",
        "ingress.enabled=true,ingress.servingHost=api.example.com",
    )
    assert proc.returncode != 0
    assert "hostNetwork.enabled is a test mode" in proc.stderr


@pytest.mark.parametrize("scenario", ["default", "minimal-kind"])
def test_a_normal_install_has_no_trace_of_the_test_mode(
    scenario: str, render: Callable[..., list[Doc]]
) -> None:
    docs = render(scenario)
    for pod in pods(docs):
        assert "hostNetwork" not in pod.spec, pod.where
        for c in pod.containers():
            env = _env(c)
            assert "KUBERNETES_SERVICE_HOST" not in env, pod.where
            assert "DRIFTLOOP_SERVING__REUSE_PORT" not in env, pod.where
    serving = _container(_one(docs, "Deployment", "-serving"))
    assert serving["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
    assert _env(serving)["DRIFTLOOP_SERVING__HOST"] == "0.0.0.0"


@pytest.mark.parametrize(
    ("setting", "refusal"),
    [
        ("hostNetwork.host=0.0.0.0", "hostNetwork.host"),
        ("hostNetwork.host=127.0.0.1 --protected-mode no", "hostNetwork.host"),
        ("serving.auth.enabled=false", "needs serving.auth, mlflow.auth and prefect.auth"),
        ("mlflow.auth.enabled=false", "needs serving.auth, mlflow.auth and prefect.auth"),
        ("prefect.auth.enabled=false", "needs serving.auth, mlflow.auth and prefect.auth"),
        ("probes.mode=httpGet", "needs probes.mode=exec"),
        ("mlflow.replicas=2", "one MLflow replica"),
    ],
)
def test_the_test_mode_fails_closed(helm_bin: Path, setting: str, refusal: str) -> None:
    """On the node's network every process reaches the servers' ports and NetworkPolicies do not
    apply: the mode listens on loopback only, with every authentication on (review finding)."""
    proc = _render(helm_bin, "--set", setting)
    assert proc.returncode != 0, setting
    assert refusal in proc.stderr, proc.stderr[-500:]
