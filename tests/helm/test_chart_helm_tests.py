"""`helm test` of the chart (templates/tests) and the NOTES of `helm status`.

Rendered: one test pod per component the release runs (none for a disabled one), each as
hardened as every other pod, on the node's network only in the test mode (hostNetwork.enabled),
admitted by the release's NetworkPolicies to exactly the component it checks; one checker for
all of them (ConfigMap <release>-driftloop-test-check), valid Python; NOTES.txt tells how to open
each UI and API, where the credentials are, and how to call the inference API.

The checker runs here for real wherever a real server can run, fed with the environment the
chart renders for its pod (only the addresses and secrets are replaced):
- Redis: a real ``redis-server`` on 127.0.0.1 (skipped, naming why, without the binary).
- PostgreSQL: a real PostgreSQL (as tests/helm/test_chart_postgres_init.py: Unix socket only)
  set up by the chart's init script; psycopg2, the platform image's driver, must be installed.
- MLflow and Prefect: the real servers with their auth on (the embedded platform's services;
  MLflow users provisioned by driftloop.registry.access, as the chart's provision hook does).
- Serving: MOCKED by a small HTTP server, because a real one needs a trained champion model. It
  answers as the service does (ready 200/503 ``not_ready``, 401 without or with a wrong bearer
  token) and decodes the request body with the real serving.codec.

NOTES.txt: ``helm install --dry-run`` of the pinned helm (v3.17.2) still asks a cluster for its
version (checked below), so the NOTES are rendered by ``helm template`` of a copy of the chart in
which a ConfigMap includes NOTES.txt's text as a template (same engine, values and helpers). Its
shell lines are run with a stub ``kubectl`` (it answers from the Secrets of the same render)
against the serving mock.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import test_chart_postgres_init as pg_init
import yaml
from chart_support import CHART, NEW_KUBE, run_helm
from test_chart_policy import pods, selects
from test_chart_policy import (
    test_every_container_has_requests_and_limits as policy_requests_and_limits,
)
from test_chart_policy import test_every_container_is_hardened as policy_hardened
from test_chart_policy import (
    test_every_pod_and_object_carries_an_activity_label as policy_activity_labels,
)
from test_chart_policy import test_network_policies_deny_by_default as policy_default_deny
from test_chart_policy import test_no_secret_values_in_plain_text as policy_no_plain_secrets
from test_chart_policy import test_one_service_account_per_component as policy_one_account
from test_chart_policy import test_only_the_worker_mounts_an_api_token as policy_api_token
from test_chart_security import test_no_secret_value_is_in_a_config_map as policy_no_cm_secrets

from driftloop.embedded.services import free_port
from driftloop.schema import MODEL_INPUT_COLUMNS
from serving import codec

pytestmark = pytest.mark.helm

Doc = dict[str, Any]
Render = Callable[..., list[Doc]]

TARGETS = ("postgresql", "redis", "mlflow", "prefect", "serving", "serving-selfcheck")
#: The component (app.kubernetes.io/component of its pods) each test pod may reach.
REACHES = {
    "postgresql": {"postgresql"},
    "redis": {"redis"},
    "mlflow": {"mlflow"},
    "prefect": {"prefect-server"},
    "serving": {"serving"},
    "serving-selfcheck": {"mlflow", "redis"},  # what the serving container it runs reads
}
HOSTNET = ("--set", "hostNetwork.enabled=true,probes.mode=exec")
COMPONENTS_OFF = (
    "--set",
    "serving.enabled=false",
    "--set",
    "prefect.enabled=false",
    "--set",
    "worker.enabled=false",
    "--set",
    "deploy.enabled=false",
    "--set",
    "redis.enabled=false",
    "--set",
    "redis.external.host=redis.example.internal",
    "--set",
    "redis.existingSecret=ext-redis",
)
CASES: dict[str, tuple[str, tuple[str, ...], set[str]]] = {
    # name: (ci scenario, extra helm arguments, expected test targets)
    "default": ("default", (), set(TARGETS)),
    "hostnet": ("default", HOSTNET, set(TARGETS)),
    "components-off": ("default", COMPONENTS_OFF, {"postgresql", "mlflow"}),
    "external-db": (
        "external-postgres-s3",
        (),
        {"mlflow", "prefect", "serving", "serving-selfcheck"},
    ),
    "tests-off": ("default", ("--set", "tests.enabled=false"), set()),
}
CHECK_CM = "rel-driftloop-test-check"
#: Short waits for the checker against local servers (every failure here is definite).
FAST = {
    "DRIFTLOOP_TEST_WAIT_S": "3",
    "DRIFTLOOP_TEST_SHORT_WAIT_S": "1",
    "DRIFTLOOP_TEST_RETRY_S": "0.2",
    "DRIFTLOOP_TEST_BUDGET_S": "10",
}


def case_docs(render: Render, case: str) -> list[Doc]:
    scenario, extra, _ = CASES[case]
    return render(scenario, NEW_KUBE, *extra)


def hook_pods(docs: list[Doc]) -> dict[str, Doc]:
    """The `helm test` pods by target."""
    found = {}
    for d in docs:
        if (
            d["kind"] == "Pod"
            and d["metadata"].get("annotations", {}).get("helm.sh/hook") == "test"
        ):
            found[d["metadata"]["labels"]["driftloop.io/test"]] = d
    return found


def values() -> Doc:
    loaded: Doc = yaml.safe_load((CHART / "values.yaml").read_text())
    return loaded


# ------------------------------------------------------------------------------- rendering


@pytest.mark.parametrize("case", sorted(CASES))
def test_one_test_pod_per_enabled_component(render: Render, case: str) -> None:
    docs = case_docs(render, case)
    expected = CASES[case][2]
    found = hook_pods(docs)
    assert set(found) == expected
    for target, pod in found.items():
        assert pod["metadata"]["name"] == f"rel-driftloop-test-{target}"
        labels = pod["metadata"]["labels"]
        assert labels["app.kubernetes.io/component"] == "test"
        assert pod["metadata"]["annotations"]["helm.sh/hook-delete-policy"] == (
            "before-hook-creation"
        )
        (container,) = pod["spec"]["containers"]
        if target != "serving-selfcheck":  # the self-check runs the serving image itself
            assert container["command"] == ["python", "/etc/driftloop-test/check.py", target]
            assert container["image"].startswith("driftloop-platform:")
    # The checker exists exactly when test pods do; without them no policy names one.
    configmaps = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == CHECK_CM]
    assert len(configmaps) == (1 if expected else 0)
    policies = json.dumps([d for d in docs if d["kind"] == "NetworkPolicy"])
    for target in TARGETS:
        assert (f'"driftloop.io/test": "{target}"' in policies) == (target in expected), target


def hook_pods_in_context(docs: list[Doc], strip_host_network: bool = False) -> list[Doc]:
    """The test pods, with the objects the policy checks look them up in (ServiceAccounts,
    Secrets, ConfigMaps, NetworkPolicies). ``strip_host_network``: take the test mode's two
    network fields out of the pods (after checking them), which the general policy refuses."""
    found = []
    for pod in hook_pods(docs).values():
        if strip_host_network:
            pod = json.loads(json.dumps(pod))
            assert pod["spec"].pop("hostNetwork") is True
            assert pod["spec"].pop("dnsPolicy") == "ClusterFirstWithHostNet"
        found.append(pod)
    accounts = {pod["spec"]["serviceAccountName"] for pod in found}
    context = [
        d
        for d in docs
        if d["kind"] in ("Secret", "ConfigMap", "NetworkPolicy")
        or (d["kind"] == "ServiceAccount" and d["metadata"]["name"] in accounts)
    ]
    return found + context


@pytest.mark.parametrize("case", ["default", "hostnet", "components-off", "external-db"])
def test_test_pods_pass_the_chart_policy(render: Render, case: str) -> None:
    """The checks tests/helm/test_chart_policy.py and test_chart_security.py apply to every pod
    (hardened containers, resources, activity label, no API token, own ServiceAccount, default
    deny plus an allow policy, no secret in plain text or in a ConfigMap), on the test pods."""
    docs = case_docs(render, case)
    subset = hook_pods_in_context(docs, strip_host_network=case == "hostnet")
    assert len([d for d in subset if d["kind"] == "Pod"]) == len(CASES[case][2])
    for check in (
        policy_hardened,
        policy_requests_and_limits,
        policy_activity_labels,
        policy_api_token,
        policy_one_account,
        policy_default_deny,
        policy_no_plain_secrets,
        policy_no_cm_secrets,
    ):
        check(subset)


def test_test_pods_use_the_test_resources_and_no_api_token(render: Render) -> None:
    docs = case_docs(render, "default")
    resources = values()["tests"]["resources"]
    for target, pod in hook_pods(docs).items():
        spec = pod["spec"]
        assert spec["automountServiceAccountToken"] is False
        assert spec["serviceAccountName"] == "rel-driftloop-test"
        assert spec["restartPolicy"] == "Never"
        assert 0 < spec["activeDeadlineSeconds"] <= 900
        (container,) = spec["containers"]
        if target != "serving-selfcheck":  # runs with serving's own resources
            assert container["resources"] == resources, target


@pytest.mark.parametrize("case", ["default", "hostnet", "components-off"])
def test_host_network_only_in_the_test_mode(render: Render, case: str) -> None:
    docs = case_docs(render, case)
    test_mode = any("hostNetwork.enabled=true" in arg for arg in CASES[case][1])
    if not test_mode:
        for pod in pods(docs):
            assert "hostNetwork" not in pod.spec, pod.where
    for target, test_pod in hook_pods(docs).items():
        spec = test_pod["spec"]
        assert spec.get("hostNetwork", False) is test_mode, target
        assert ("dnsPolicy" in spec) is test_mode, target
        if test_mode:
            assert spec["dnsPolicy"] == "ClusterFirstWithHostNet", target
    # The self-check shares the node's loopback with the Deployment in the test mode: it
    # declares no port there (a host port) and picks a free one at start.
    selfcheck = hook_pods(docs).get("serving-selfcheck")
    if selfcheck:
        (container,) = selfcheck["spec"]["containers"]
        assert ("ports" in container) is not test_mode
        assert ('s.bind(("127.0.0.1", 0))' in container["args"][0]) is test_mode


def env_values(pod: Doc) -> dict[str, str]:
    (container,) = pod["spec"]["containers"]
    return {e["name"]: e["value"] for e in container["env"] if "value" in e}


@pytest.mark.parametrize("case", ["default", "hostnet"])
def test_test_pods_call_the_addresses_every_other_client_uses(render: Render, case: str) -> None:
    """The URL helpers: Services normally, 127.0.0.1:<hostNetwork.ports.*> in the test mode."""
    docs = case_docs(render, case)
    found = {t: env_values(p) for t, p in hook_pods(docs).items()}
    serving = next(p for p in pods(docs) if p.where == "Deployment/rel-driftloop-serving")
    serving_env = {e["name"]: e.get("value") for e in serving.spec["containers"][0]["env"]}
    assert found["mlflow"]["DRIFTLOOP_TEST_MLFLOW_URL"] == serving_env["MLFLOW_TRACKING_URI"]
    redis = found["redis"]["DRIFTLOOP_TEST_REDIS_ADDRESS"]
    assert serving_env["DRIFTLOOP_FEATURES__REDIS_CONNECTION"].startswith(redis + ",")
    job = next(p for p in pods(docs) if p.where == "Job/rel-driftloop-deploy")
    job_env = {e["name"]: e.get("value") for e in job.spec["containers"][0]["env"]}
    assert found["prefect"]["DRIFTLOOP_TEST_PREFECT_API_URL"] == job_env["PREFECT_API_URL"]
    pg = found["postgresql"]
    mlflow = next(p for p in pods(docs) if p.where == "Deployment/rel-driftloop-mlflow")
    mlflow_env = {e["name"]: e.get("value") for e in mlflow.spec["containers"][0]["env"]}
    backend = mlflow_env["MLFLOW_BACKEND_STORE_URI"]
    assert f"@{pg['DRIFTLOOP_TEST_PG_HOST']}:{pg['DRIFTLOOP_TEST_PG_PORT']}/" in backend
    ports = values()["hostNetwork"]["ports"]
    expected = {
        "mlflow": ("DRIFTLOOP_TEST_MLFLOW_URL", "http://127.0.0.1:{mlflow}"),
        "redis": ("DRIFTLOOP_TEST_REDIS_ADDRESS", "127.0.0.1:{redis}"),
        "prefect": ("DRIFTLOOP_TEST_PREFECT_API_URL", "http://127.0.0.1:{prefect}/api"),
        "serving": ("DRIFTLOOP_TEST_SERVING_URL", "http://127.0.0.1:{serving}"),
        "postgresql": ("DRIFTLOOP_TEST_PG_PORT", "{postgresql}"),
    }
    for target, (name, address) in expected.items():
        if case == "hostnet":
            assert found[target][name] == address.format(**ports), target
        else:
            assert "127.0.0.1" not in found[target][name], target
            assert found[target][name] != address.format(**ports), target


def test_the_checker_is_one_valid_python_script_in_one_place(
    render: Render, tmp_path: Path
) -> None:
    docs = case_docs(render, "default")
    (cm,) = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == CHECK_CM]
    source = cm["data"]["check.py"]
    compile(source, "check.py", "exec")
    checker = load_checker(docs, tmp_path)
    assert set(checker.TARGETS) == set(TARGETS) - {"serving-selfcheck"}
    for target, pod in hook_pods(docs).items():
        volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
        if target == "serving-selfcheck":
            continue
        assert volumes["check"]["configMap"]["name"] == CHECK_CM
        (container,) = pod["spec"]["containers"]
        assert {"name": "check", "mountPath": "/etc/driftloop-test", "readOnly": True} in (
            container["volumeMounts"]
        )
        assert "args" not in container  # no pod embeds a copy
    # The inference request is a valid OIP v2 body: one complete feature row.
    decoded = codec.decode(cm["data"]["inference-body.json"].encode(), max_rows=10)
    assert decoded.mode == codec.FEATURES
    assert decoded.n == 1
    assert list(decoded.columns) == list(MODEL_INPUT_COLUMNS)


def test_the_checker_refuses_an_unknown_target(
    render: Render, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    checker = load_checker(case_docs(render, "default"), tmp_path)
    assert checker.main(["check.py", "kafka"], {}) == 2
    assert "usage: check.py postgresql|redis|mlflow|prefect|serving" in capsys.readouterr().err


# --------------------------------------------------------------------------- NetworkPolicies

NAMESPACE_LABELS = {"kubernetes.io/metadata.name": "ml"}


def label_selector_matches(selector: Doc, labels: dict[str, str]) -> bool:
    if not (selector.get("matchLabels") or {}).items() <= labels.items():
        return False
    for expr in selector.get("matchExpressions") or []:
        assert expr["operator"] == "In", expr
        if labels.get(expr["key"]) not in expr["values"]:
            return False
    return True


def peer_matches(peer: Doc, labels: dict[str, str]) -> bool:
    """A NetworkPolicyPeer against a pod of the release's namespace ("ml")."""
    if "ipBlock" in peer:
        return False  # no rule of the chart names pod addresses
    namespaces = peer.get("namespaceSelector")
    if namespaces is not None and not label_selector_matches(namespaces, NAMESPACE_LABELS):
        return False
    return label_selector_matches(peer.get("podSelector") or {}, labels)


def port_matches(ports: list[Doc] | None, number: int, name: str | None) -> bool:
    if not ports:
        return True
    for p in ports:
        if p.get("protocol", "TCP") != "TCP":
            continue
        port = p.get("port")
        if port is None or port == number or (name is not None and port == name):
            return True
        if isinstance(port, int) and "endPort" in p and port <= number <= p["endPort"]:
            return True
    return False


def allowed(
    policies: list[Doc],
    direction: str,
    subject: dict[str, str],
    peer: dict[str, str],
    number: int,
    name: str | None,
) -> bool:
    """Does the subject pod's side allow this connection (direction Egress: subject connects
    to peer's port; Ingress: peer connects to the subject's port)?"""
    applying = [
        p for p in policies if direction in p["spec"]["policyTypes"] and selects(p, subject)
    ]
    if not applying:
        return True  # not isolated in that direction
    rules_key, peers_key = ("egress", "to") if direction == "Egress" else ("ingress", "from")
    for policy in applying:
        for rule in policy["spec"].get(rules_key) or []:
            peers = rule.get(peers_key)
            if peers and not any(peer_matches(p, peer) for p in peers):
                continue
            if port_matches(rule.get("ports"), number, name):
                return True
    return False


def reachable(policies: list[Doc], src: dict[str, str], dst: Any, port: tuple[int, Any]) -> bool:
    number, name = port
    return allowed(policies, "Egress", src, dst.labels, number, name) and allowed(
        policies, "Ingress", dst.labels, src, number, name
    )


def declared_ports(pod: Any) -> list[tuple[int, Any]]:
    found = [
        (p["containerPort"], p.get("name")) for c in pod.containers() for p in c.get("ports") or []
    ]
    return found or [(80, None)]  # a pod without ports: any port must stay closed


@pytest.mark.parametrize("case", ["default", "components-off", "external-db"])
def test_network_policies_admit_each_test_pod_to_its_component_only(
    render: Render, case: str
) -> None:
    docs = case_docs(render, case)
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    everything = pods(docs)
    tests = hook_pods(docs)
    assert tests
    for target, pod in tests.items():
        src = pod["metadata"]["labels"]
        reached = set()
        for dst in everything:
            component = dst.labels["app.kubernetes.io/component"]
            for number, name in declared_ports(dst):
                # (a pod without ports is probed on an unnamed port 80: it must stay closed)
                expected = component in REACHES[target] and name is not None
                where = f"test-{target} -> {dst.where} port {number}"
                # Each side on its own: the test pod's egress and the component's ingress.
                egress = allowed(policies, "Egress", src, dst.labels, number, name)
                assert egress is expected, f"{where}: egress {egress}"
                ingress = allowed(policies, "Ingress", dst.labels, src, number, name)
                assert ingress is expected, f"{where}: ingress {ingress}"
                if egress and ingress:
                    reached.add(component)
        running = {p.labels["app.kubernetes.io/component"] for p in everything}
        assert reached == REACHES[target] & running, target
    # Nothing may call a test pod.
    for dst in (p for p in everything if p.labels.get("driftloop.io/test")):
        for src in everything:
            assert not reachable(policies, src.labels, dst, (8000, "http")), (src.where, dst.where)


def test_the_other_clients_keep_their_access(render: Render) -> None:
    """Taking the test pods out of the clients policy changes nothing for flow runs: they
    reach MLflow, Prefect and Redis (not serving: its policy never admitted them), and never
    the database."""
    docs = case_docs(render, "default")
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    everything = pods(docs)
    flow_run = next(p for p in everything if p.where == "work-pool base job template")
    for dst in everything:
        component = dst.labels["app.kubernetes.io/component"]
        if component in ("mlflow", "prefect-server", "redis"):
            assert reachable(policies, flow_run.labels, dst, declared_ports(dst)[0]), dst.where
        if component == "postgresql":
            assert not reachable(policies, flow_run.labels, dst, declared_ports(dst)[0])


# ----------------------------------------------------------------------- the checker, for real


def load_checker(docs: list[Doc], folder: Path) -> ModuleType:
    """check.py and inference-body.json of the ConfigMap in ``folder`` (as mounted in the pods),
    imported as a module."""
    (cm,) = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == CHECK_CM]
    for key, text in cm["data"].items():
        (folder / key).write_text(text)
    spec = importlib.util.spec_from_file_location(
        f"driftloop_check_{id(folder)}", folder / "check.py"
    )
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pod_env(pod: Doc, given: dict[str, str], absent: tuple[str, ...] = ()) -> dict[str, str]:
    """The environment the chart gives the pod: plain values as rendered, values from Secrets
    (and addresses) from ``given``; ``absent``: optional Secret keys left unset."""
    (container,) = pod["spec"]["containers"]
    rendered = {e["name"]: e for e in container["env"]}
    assert set(given) <= set(rendered), set(given) - set(rendered)
    env = {}
    for name, e in rendered.items():
        if name in absent:
            assert e["valueFrom"]["secretKeyRef"].get("optional") is True, name
        elif name in given:
            env[name] = given[name]
        else:
            assert "value" in e, f"{name} comes from a Secret: the test must give it"
            env[name] = e["value"]
    return {**env, **FAST}


def run_checker(
    checker: ModuleType, target: str, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> tuple[int, list[str]]:
    code = checker.main(["check.py", target], env)
    lines = capsys.readouterr().out.splitlines()
    assert lines, "the checker printed nothing"
    for line in lines:  # one readable line per check
        assert re.match(rf"(ok|FAILED|skipped) {target}: ", line), line
    return code, lines


@pytest.fixture
def default_docs(render: Render) -> list[Doc]:
    return case_docs(render, "default")


@pytest.fixture
def checker(default_docs: list[Doc], tmp_path: Path) -> ModuleType:
    return load_checker(default_docs, tmp_path)


# Redis: a real server.


def start_redis(folder: Path, password: str | None) -> tuple[subprocess.Popen[bytes], str]:
    exe = shutil.which("redis-server")
    if not exe:
        pytest.skip("redis-server is not installed on this machine (Debian package redis-server)")
    port = free_port()
    conf = folder / "redis.conf"
    lines = [f"port {port}", "bind 127.0.0.1", 'save ""', "appendonly no", f"dir {folder}"]
    if password:
        lines.append(f"requirepass {password}")
    conf.write_text("\n".join(lines) + "\n")
    log = (folder / "redis.log").open("wb")
    proc = subprocess.Popen([exe, str(conf)], stdout=log, stderr=subprocess.STDOUT)
    log.close()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, f"127.0.0.1:{port}"
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.1)
    proc.kill()
    proc.wait()
    raise AssertionError("redis-server did not start: " + (folder / "redis.log").read_text())


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[tuple[str, str]]:
    password = base64.b32encode(os.urandom(20)).decode()
    proc, address = start_redis(tmp_path, password)
    try:
        yield address, password
    finally:
        proc.terminate()
        proc.wait(timeout=15)


@pytest.mark.integration
def test_redis_check_against_a_real_server(
    default_docs: list[Doc],
    checker: ModuleType,
    redis_server: tuple[str, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    address, password = redis_server
    pod = hook_pods(default_docs)["redis"]
    given = {"DRIFTLOOP_TEST_REDIS_ADDRESS": address, "DRIFTLOOP_TEST_REDIS_PASSWORD": password}
    code, lines = run_checker(checker, "redis", pod_env(pod, given), capsys)
    assert code == 0, lines
    assert len(lines) == 2
    assert lines[0] == "ok redis: AUTH with the password, PING (PONG)"
    assert lines[1].startswith("ok redis: PING without the password is refused (NOAUTH")
    # A wrong password fails the first check, and only it.
    wrong = pod_env(pod, {**given, "DRIFTLOOP_TEST_REDIS_PASSWORD": "not-the-password"})
    code, lines = run_checker(checker, "redis", wrong, capsys)
    assert code == 1
    assert lines[0].startswith("FAILED redis: AUTH with the password, PING: AUTH, PING answered")
    assert lines[1].startswith("ok redis: PING without the password is refused")
    # As the pod runs it: `python check.py redis`, exit status 0.
    assert checker.__file__
    proc = subprocess.run(
        [sys.executable, checker.__file__, "redis"],
        env={"PATH": os.environ["PATH"], **pod_env(pod, given)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("ok redis: ") == 2


@pytest.mark.integration
def test_redis_check_fails_on_a_server_without_a_password(
    default_docs: list[Doc], checker: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    proc, address = start_redis(tmp_path, None)
    try:
        pod = hook_pods(default_docs)["redis"]
        env = pod_env(
            pod, {"DRIFTLOOP_TEST_REDIS_ADDRESS": address, "DRIFTLOOP_TEST_REDIS_PASSWORD": "x"}
        )
        code, lines = run_checker(checker, "redis", env, capsys)
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    assert code == 1
    assert lines[1].startswith(
        "FAILED redis: PING without the password is refused: PING without a password answered "
        "'+PONG'"
    )


# PostgreSQL: a real server set up by the chart's init script.


@pytest.fixture(scope="module")
def pg_server() -> Iterator[Path]:
    """The server of test_chart_postgres_init.py (Unix socket in a temporary folder), for the
    checker, which needs psycopg2."""
    pytest.importorskip(
        "psycopg2", reason="psycopg2 (the platform image's PostgreSQL driver) is not installed"
    )
    if not all(shutil.which(b) for b in pg_init.BINARIES):
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl, psql) are not installed")
    if pg_init.AS_SERVER_USER and not shutil.which("setpriv"):
        pytest.skip("running as root without setpriv to drop to an unprivileged user")
    with tempfile.TemporaryDirectory(prefix="driftloop-pg-") as name:
        folder = Path(name)
        if pg_init.AS_SERVER_USER:
            shutil.chown(folder, "nobody")
        yield from pg_init._serve(folder)


@pytest.mark.integration
def test_postgresql_check_against_a_real_server(
    default_docs: list[Doc],
    checker: ModuleType,
    pg_server: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (cm,) = [d for d in default_docs if d["metadata"]["name"] == "rel-driftloop-postgresql-init"]
    script = pg_server / "10-driftloop-users.sh"
    script.write_text(cm["data"]["10-driftloop-users.sh"])
    script.chmod(0o555)
    init = pg_init.run([str(script)], pg_init.env_for(pg_server, "mlflow-pw-1", "prefect-pw-1"))
    assert init.returncode == 0, init.stderr
    pod = hook_pods(default_docs)["postgresql"]
    given = {
        "DRIFTLOOP_TEST_PG_HOST": str(pg_server),  # the socket folder; port 5432 as rendered
        "DRIFTLOOP_TEST_PG_MLFLOW_PASSWORD": "mlflow-pw-1",
        "DRIFTLOOP_TEST_PG_PREFECT_PASSWORD": "prefect-pw-1",
    }
    code, lines = run_checker(checker, "postgresql", pod_env(pod, given), capsys)
    assert code == 0, lines
    assert lines[:2] == [
        "ok postgresql: user mlflow connects to database mlflow (select 1)",
        "ok postgresql: user prefect connects to database prefect (select 1)",
    ]
    assert lines[2].startswith("ok postgresql: user mlflow is refused on database prefect (")
    assert "permission denied" in lines[2]

    # Broken isolation is found: the MLflow user may connect to the Prefect database.
    grant = pg_init.run(
        ["psql", "-h", str(pg_server), "-U", "postgres", "-d", "postgres", "-c",
         "GRANT CONNECT ON DATABASE prefect TO mlflow"]
    )  # fmt: skip
    assert grant.returncode == 0, grant.stderr
    try:
        code, lines = run_checker(checker, "postgresql", pod_env(pod, given), capsys)
    finally:
        revoke = pg_init.run(
            ["psql", "-h", str(pg_server), "-U", "postgres", "-d", "postgres", "-c",
             "REVOKE CONNECT ON DATABASE prefect FROM mlflow"]
        )  # fmt: skip
        assert revoke.returncode == 0, revoke.stderr
    assert code == 1
    assert lines[2] == (
        "FAILED postgresql: user mlflow is refused on database prefect: "
        "the MLflow user connected to the Prefect database"
    )
    # A wrong password fails that user's check.
    wrong = pod_env(pod, {**given, "DRIFTLOOP_TEST_PG_PREFECT_PASSWORD": "nope"})
    code, lines = run_checker(checker, "postgresql", wrong, capsys)
    assert code == 1
    assert lines[1].startswith("FAILED postgresql: user prefect connects to database prefect: ")
    assert "password authentication failed" in lines[1]


# MLflow and Prefect: the real servers with auth on.


@pytest.fixture(scope="module")
def mlflow_with_auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """MLflow's basic-auth server, users and grants provisioned as the chart's hook does."""
    from driftloop.embedded.services import mlflow_service, start_service, stop_service
    from driftloop.registry.access import provision_embedded
    from driftloop.settings import MlflowSettings, Settings

    state = tmp_path_factory.mktemp("helm-test-mlflow")
    settings = Settings(state_dir=state, mlflow=MlflowSettings(port=free_port()))
    service = mlflow_service(settings)
    start_service(service, settings)
    try:
        provision_embedded(settings)
        yield settings
    finally:
        stop_service(service, settings)


@pytest.mark.integration
@pytest.mark.slow
def test_mlflow_check_against_the_real_server(
    default_docs: list[Doc],
    checker: ModuleType,
    mlflow_with_auth: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from driftloop.settings import embedded_mlflow_credentials

    settings = mlflow_with_auth
    credentials = embedded_mlflow_credentials(settings, "serving")
    assert credentials
    user, password = credentials
    pod = hook_pods(default_docs)["mlflow"]
    assert env_values(pod)["DRIFTLOOP_TEST_MLFLOW_MODEL"] == settings.mlflow.registered_model
    given = {
        "DRIFTLOOP_TEST_MLFLOW_URL": settings.mlflow.uri,
        "MLFLOW_TRACKING_USERNAME": user,
        "MLFLOW_TRACKING_PASSWORD": password,
    }
    code, lines = run_checker(checker, "mlflow", pod_env(pod, given), capsys)
    assert code == 0, lines
    assert lines == [
        "ok mlflow: server answers (GET /health 200)",
        "ok mlflow: API without credentials is refused (401)",
        f"ok mlflow: user {user} reads the registered model flight-delay (200)",
    ]
    # A wrong password, or a model the user holds no grant on, fails that check.
    wrong = pod_env(pod, {**given, "MLFLOW_TRACKING_PASSWORD": "not-the-password"})
    code, lines = run_checker(checker, "mlflow", wrong, capsys)
    assert code == 1
    assert lines[2].startswith(f"FAILED mlflow: user {user} reads the registered model")
    assert "answered HTTP 401" in lines[2]
    other = pod_env(pod, {**given, "DRIFTLOOP_TEST_MLFLOW_MODEL": "not-granted"})
    code, lines = run_checker(checker, "mlflow", other, capsys)
    assert code == 1
    assert "answered HTTP 403" in lines[2]


@pytest.fixture(scope="module")
def prefect_with_auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from driftloop.embedded.services import prefect_service, start_service, stop_service
    from driftloop.settings import PrefectSettings, Settings

    state = tmp_path_factory.mktemp("helm-test-prefect")
    settings = Settings(state_dir=state, prefect=PrefectSettings(port=free_port()))
    service = prefect_service(settings)
    start_service(service, settings)
    try:
        yield settings
    finally:
        stop_service(service, settings)


@pytest.mark.integration
@pytest.mark.slow
def test_prefect_check_against_the_real_server(
    default_docs: list[Doc],
    checker: ModuleType,
    prefect_with_auth: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import httpx

    from driftloop.settings import prefect_auth_string

    settings = prefect_with_auth
    auth_string = prefect_auth_string(settings)
    assert auth_string
    pod = hook_pods(default_docs)["prefect"]
    pool = env_values(pod)["DRIFTLOOP_TEST_PREFECT_WORK_POOL"]
    assert pool == values()["worker"]["workPool"]
    api = settings.prefect.url
    given = {"DRIFTLOOP_TEST_PREFECT_API_URL": api, "PREFECT_API_AUTH_STRING": auth_string}
    env = pod_env(pod, given)

    # No work pool yet: the two work-pool checks fail, the rest pass.
    code, lines = run_checker(checker, "prefect", env, capsys)
    assert code == 1
    assert lines[:3] == [
        "ok prefect: server answers (GET /api/health 200)",
        "ok prefect: API without the auth string is refused (401)",
        lines[2],
    ]
    assert lines[2].startswith("ok prefect: API with the auth string (Prefect ")
    assert lines[3].startswith(f"FAILED prefect: work pool {pool} exists: ")
    assert "HTTP 404" in lines[3]

    user, _, password = auth_string.partition(":")
    with httpx.Client(base_url=api, auth=(user, password), timeout=30) as client:
        created = client.post("/work_pools/", json={"name": pool, "type": "kubernetes"})
        assert created.status_code == 201, created.text
        # The pool, but no worker: the heartbeat check fails.
        code, lines = run_checker(checker, "prefect", env, capsys)
        assert code == 1
        assert lines[3] == f"ok prefect: work pool {pool} exists (type kubernetes)"
        assert lines[4].startswith(f"FAILED prefect: a worker of {pool} sent a heartbeat: ")
        assert "0 worker(s), none online" in lines[4]
        beat = client.post(
            f"/work_pools/{pool}/workers/heartbeat",
            json={"name": "helm-test-worker", "heartbeat_interval_seconds": 30},
        )
        assert beat.status_code == 204, beat.text
    code, lines = run_checker(checker, "prefect", env, capsys)
    assert code == 0, lines
    assert lines[4] == f"ok prefect: a worker of {pool} sent a heartbeat (helm-test-worker)"
    # Without the auth string the authenticated checks fail.
    bad = pod_env(pod, {**given, "PREFECT_API_AUTH_STRING": f"{user}:wrong"})
    code, lines = run_checker(checker, "prefect", bad, capsys)
    assert code == 1
    assert lines[2].startswith("FAILED prefect: API with the auth string: ")
    assert "answered HTTP 401" in lines[2]


# Serving: a mock (a real service needs a trained champion model).


class ServingMock(ThreadingHTTPServer):
    """Answers like the inference service: GET /v2/health/ready (200 with a champion, else 503
    not_ready), GET /v2/health/replica (200 with a champion or when the registry names none, 503
    while a registered champion is not loaded); POST /v2/models/<model>/infer: 401 without or
    with a wrong bearer token, the body decoded by the real serving.codec (400 if invalid), 404
    for another model. Records every request."""

    def __init__(self, token: str, model: str) -> None:
        super().__init__(("127.0.0.1", 0), ServingHandler)
        self.token, self.model = token, model
        self.champion: str | None = "3"
        #: the registry names a champion (loaded or not)
        self.registered = True
        self.requests: list[dict[str, Any]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class ServingHandler(BaseHTTPRequestHandler):
    server: ServingMock

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def reply(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self.server.requests.append({"method": "GET", "path": self.path})
        if self.path == "/v2/health/replica":
            if self.server.champion is not None:
                return self.reply(200, {"ready": True, "reason": "serving champion version 3"})
            if not self.server.registered:
                reason = "the registry names no champion of flight-delay yet"
                return self.reply(200, {"ready": True, "reason": reason})
            return self.reply(503, {"ready": False, "reason": "the champion is not loaded yet"})
        if self.path != "/v2/health/ready":
            return self.reply(404, {"error": "not found"})
        if self.server.champion is None:
            return self.reply(503, {"status": "not_ready", "champion": None})
        return self.reply(200, {"status": "ready", "champion": self.server.champion})

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.requests.append(
            {"method": "POST", "path": self.path, "headers": dict(self.headers), "body": body}
        )
        if self.headers.get("Authorization") != f"Bearer {self.server.token}":
            return self.reply(401, {"error": "missing or unknown bearer token"})
        if self.path != f"/v2/models/{self.server.model}/infer":
            return self.reply(404, {"error": "unknown model"})
        if self.server.champion is None:
            return self.reply(503, {"error": "no champion of flight-delay is loaded"})
        try:
            decoded = codec.decode(body, max_rows=100)
        except Exception as exc:
            return self.reply(400, {"error": str(exc)})
        outputs = [
            {"name": "late_probability", "datatype": "FP64", "shape": [decoded.n], "data": [0.25]},
            {"name": "is_late", "datatype": "INT64", "shape": [decoded.n], "data": [0]},
        ]
        return self.reply(200, {"model_name": self.server.model, "outputs": outputs})


@pytest.fixture
def serving_mock() -> Iterator[ServingMock]:
    server = ServingMock(token=base64.b32encode(os.urandom(20)).decode(), model="flight-delay")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_serving_check_against_a_mock_of_the_service(
    default_docs: list[Doc],
    checker: ModuleType,
    serving_mock: ServingMock,
    capsys: pytest.CaptureFixture[str],
) -> None:
    pod = hook_pods(default_docs)["serving"]
    given = {
        "DRIFTLOOP_TEST_SERVING_URL": serving_mock.url,
        "DRIFTLOOP_TEST_PREDICT_TOKEN": serving_mock.token,
    }
    code, lines = run_checker(checker, "serving", pod_env(pod, given), capsys)
    assert code == 0, lines
    assert lines == [
        "ok serving: ready (with a champion, or none registered yet) (ready, champion 3)",
        "ok serving: inference without a token is refused (401)",
        "ok serving: inference on flight-delay with the predict token "
        "(outputs late_probability=0.25, is_late=0)",
    ]
    posted = [r for r in serving_mock.requests if r["method"] == "POST"]
    assert [r["headers"].get("Authorization") for r in posted] == [
        None,
        f"Bearer {serving_mock.token}",
    ]
    # A champion is registered but this service has not loaded it: not ready.
    serving_mock.champion = None
    code, lines = run_checker(checker, "serving", pod_env(pod, given), capsys)
    assert code == 1
    assert lines[0].startswith("FAILED serving: ready (with a champion, or none registered yet)")
    assert "HTTP 503" in lines[0]
    # A fresh install: the registry names no champion. Up, token accepted, 503 until trained.
    serving_mock.registered = False
    code, lines = run_checker(checker, "serving", pod_env(pod, given), capsys)
    assert code == 0, lines
    assert "names no champion" in lines[0]
    assert lines[2].endswith("(token accepted; 503 until a champion exists)")
    serving_mock.champion, serving_mock.registered = "3", True
    # A token the service does not know.
    wrong = pod_env(pod, {**given, "DRIFTLOOP_TEST_PREDICT_TOKEN": "not-a-token"})
    code, lines = run_checker(checker, "serving", wrong, capsys)
    assert code == 1
    assert lines[2].startswith(
        "FAILED serving: inference on flight-delay with the predict token: "
        "the predict token was refused: HTTP 401"
    )
    # An existing Secret with hashes only: the token check cannot run and says so.
    given.pop("DRIFTLOOP_TEST_PREDICT_TOKEN")
    env = pod_env(pod, given, absent=("DRIFTLOOP_TEST_PREDICT_TOKEN",))
    code, lines = run_checker(checker, "serving", env, capsys)
    assert code == 0
    assert lines[2].startswith("skipped serving: inference on flight-delay with the predict token")


# ------------------------------------------------------------------------------------ NOTES


def render_with_notes(helm_bin: Path, folder: Path, *extra: str) -> tuple[str, list[Doc]]:
    """(NOTES text, objects) of one `helm template` of a copy of the chart in which a
    ConfigMap includes NOTES.txt as a named template."""
    chart = folder / "chart"
    shutil.copytree(CHART, chart)
    notes = (chart / "templates" / "NOTES.txt").read_text()
    (chart / "templates" / "zz-rendered-notes.yaml").write_text(
        '{{- define "test.renderedNotes" -}}\n' + notes + "{{- end -}}\n"
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: zz-rendered-notes\ndata:\n"
        '  NOTES.txt: {{ include "test.renderedNotes" . | toJson }}\n'
    )
    proc = run_helm(helm_bin, "template", "rel", str(chart), "--namespace", "ml", *extra)
    assert proc.returncode == 0, proc.stderr
    docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
    (cm,) = [d for d in docs if d["metadata"]["name"] == "zz-rendered-notes"]
    return cm["data"]["NOTES.txt"], [d for d in docs if d is not cm]


def test_helm_install_dry_run_needs_a_cluster_here(helm_bin: Path, tmp_path: Path) -> None:
    """Why the NOTES are rendered through a template include: the pinned helm's
    `install --dry-run` asks the (absent) cluster for its version first."""
    kubeconfig = tmp_path / "kubeconfig"  # a cluster on a port nothing listens on
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {"name": "c", "cluster": {"server": f"https://127.0.0.1:{free_port()}"}}
                ],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
                "users": [{"name": "u", "user": {}}],
                "current-context": "c",
            }
        )
    )
    proc = subprocess.run(
        [str(helm_bin), "install", "rel", str(CHART), "-n", "ml", "--dry-run=client"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "KUBECONFIG": str(kubeconfig)},
        check=False,
    )
    assert proc.returncode != 0
    assert "Kubernetes cluster unreachable" in proc.stderr


def stub_kubectl(folder: Path, docs: list[Doc]) -> Path:
    """A `kubectl` that answers `-n ml get secret NAME -o jsonpath={.data.KEY}` from the
    rendered Secrets (and fails, like kubectl, for a Secret or key that does not exist)."""
    secrets = {d["metadata"]["name"]: d.get("data") or {} for d in docs if d["kind"] == "Secret"}
    (folder / "secrets.json").write_text(json.dumps(secrets))
    stub = folder / "bin" / "kubectl"
    stub.parent.mkdir()
    stub.write_text(
        f"#!{sys.executable}\n"
        "import json, re, sys\n"
        f"secrets = json.load(open({str(folder / 'secrets.json')!r}))\n"
        "args = sys.argv[1:]\n"
        "path = args[6] if len(args) == 7 else ''\n"
        "m = re.fullmatch(r'jsonpath=\\{\\.data\\.([\\w.-]+)\\}', path)\n"
        "if args[:4] != ['-n', 'ml', 'get', 'secret'] or args[5] != '-o' or not m:\n"
        "    sys.exit('stub kubectl: unexpected arguments %r' % args)\n"
        "data = secrets.get(args[4])\n"
        "if data is None or m.group(1) not in data:\n"
        "    sys.exit('Error from server (NotFound): %s/%s' % (args[4], m.group(1)))\n"
        "sys.stdout.write(data[m.group(1)])\n"
    )
    stub.chmod(0o755)
    return stub.parent


def shell(script: str, path: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": f"{path}:{os.environ['PATH']}", "HOME": str(path)}
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def secret_value(docs: list[Doc], name: str, key: str) -> str:
    (secret,) = [d for d in docs if d["kind"] == "Secret" and d["metadata"]["name"] == name]
    return base64.b64decode(secret["data"][key]).decode()


def check_notes(
    notes: str, docs: list[Doc], folder: Path, test_mode: bool, mock: ServingMock | None
) -> None:
    ports = values()["hostNetwork"]["ports"]
    services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
    uis = {
        "serving": ("Inference API", "rel-driftloop-serving", 8000, ports["serving"]),
        "mlflow": ("MLflow UI and API", "rel-driftloop-mlflow", 5000, ports["mlflow"]),
        "prefect": ("Prefect UI and API", "rel-driftloop-prefect-server", 4200, ports["prefect"]),
    }
    forwards = re.findall(r"kubectl -n ml port-forward svc/(\S+) (\d+)", notes)
    for component, (title, service, port, host_port) in uis.items():
        if service not in services:
            assert title not in notes, component
            continue
        assert title in notes, component
        section = notes.split(title, 1)[1].split("\n\n", 1)[0]
        if test_mode:
            assert f"http://127.0.0.1:{host_port}" in section, component
            assert "port-forward" not in section, component
        else:
            assert (service, str(port)) in forwards, component
            assert port in [p["port"] for p in services[service]["spec"]["ports"]]
            assert f"http://127.0.0.1:{port}" in section, component
    if test_mode:
        assert forwards == []
    # Every credential line works: kubectl | base64 -d gives the Secret's value.
    bin_dir = stub_kubectl(folder, docs)
    assignments = dict(re.findall(r"^\s*(\w+)=\$\((kubectl .*)\)$", notes, re.MULTILINE))
    expected = {
        name
        for name, service in (
            ("TOKEN", "rel-driftloop-serving"),
            ("PASSWORD", "rel-driftloop-mlflow"),
            ("AUTH", "rel-driftloop-prefect-server"),
        )
        if service in services
    }
    assert set(assignments) == expected
    for name, command in assignments.items():
        proc = shell(f'{name}=$({command}); printf %s "${name}"', bin_dir)
        assert proc.returncode == 0, proc.stderr
        where = re.search(r"get secret (\S+) -o jsonpath='\{\.data\.([\w.-]+)\}'", command)
        assert where, command
        assert proc.stdout == secret_value(docs, *where.groups())
        assert len(proc.stdout) >= 16
    if mock is None:
        return
    if not shutil.which("curl"):
        pytest.skip("curl is not installed: the printed inference call cannot run here")
    # The inference example, as printed: token from the Secret, then the curl call.
    token_line = next(line for line in notes.splitlines() if "TOKEN=$(" in line)
    lines = notes.splitlines()
    start = next(i for i, line in enumerate(lines) if "/infer \\" in line)
    end = next(i for i in range(start, len(lines)) if lines[i].rstrip().endswith("}'"))
    curl = "\n".join(lines[start : end + 1])
    url = re.search(r"http://127\.0\.0\.1:(\d+)", curl)
    assert url
    assert url.group(1) == str(ports["serving"] if test_mode else 8000)
    assert '-H "Authorization: Bearer $TOKEN"' in curl
    mock.token = secret_value(docs, "rel-driftloop-serving-auth", "predict-token")
    proc = shell(token_line.strip() + "\n" + curl.replace(url.group(0), mock.url), bin_dir)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["outputs"][0]["name"] == "late_probability"
    (request,) = [r for r in mock.requests if r["method"] == "POST"]
    assert request["path"] == "/v2/models/flight-delay/infer"
    assert request["headers"]["Authorization"] == f"Bearer {mock.token}"
    decoded = codec.decode(request["body"], max_rows=10)
    assert (decoded.mode, decoded.n) == (codec.FEATURES, 1)
    assert list(decoded.columns) == list(MODEL_INPUT_COLUMNS)


@pytest.mark.parametrize("case", ["default", "hostnet", "components-off"])
def test_notes_tell_how_to_reach_every_ui_and_call_the_api(
    helm_bin: Path, tmp_path: Path, serving_mock: ServingMock, case: str
) -> None:
    scenario, extra, targets = CASES[case]
    assert scenario == "default"
    notes, docs = render_with_notes(helm_bin, tmp_path, *extra)
    test_mode = case == "hostnet"
    assert ("TEST MODE" in notes) is test_mode
    serving_on = "serving" in targets
    assert ("Authorization: Bearer" in notes) is serving_on
    check_notes(notes, docs, tmp_path, test_mode, serving_mock if serving_on else None)
    # `helm test` usage: every component, and a filter that keeps the ServiceAccount hook.
    assert "helm test rel -n ml\n" in notes
    components = re.search(r"Components: ([\w, -]+)\.", notes)
    assert components
    assert set(components.group(1).split(", ")) == targets
    names = re.search(r"--filter name=(\S+),name=(\S+)", notes)
    assert names
    hooks = {
        (d["kind"], d["metadata"]["name"])
        for d in docs
        if d["metadata"].get("annotations", {}).get("helm.sh/hook") == "test"
    }
    assert ("ServiceAccount", names.group(1)) in hooks
    assert ("Pod", names.group(2)) in hooks
    # No secret value is printed, only where to read it.
    for d in docs:
        if d["kind"] == "Secret":
            for value in (d.get("data") or {}).values():
                assert base64.b64decode(value).decode() not in notes
