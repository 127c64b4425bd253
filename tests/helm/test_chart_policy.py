"""Security and consistency policy over the rendered chart, for every ci scenario: hardened
containers, resources and probes, least-privilege RBAC, default-deny NetworkPolicies, matching
selectors, cost-attribution labels and no secret values in the output."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_support import CHART, NEW_KUBE, OLD_KUBE, SCENARIOS

pytestmark = pytest.mark.helm

Doc = dict[str, Any]
Render = Callable[..., list[Doc]]
ACTIVITIES = {"training", "serving", "monitoring", "platform"}
LONG_RUNNING = {"Deployment", "StatefulSet"}
# ServiceAccounts that talk to the Kubernetes API: the worker (creates flow-run Jobs) and the
# pre-delete cleanup hook (deletes the release's Jobs and Pods at uninstall).
API_CLIENT_ACCOUNTS = {"rel-driftloop-prefect-worker", "rel-driftloop-cleanup"}


class Pod:
    """One pod template found in the output (workloads, test pods, the work pool's job)."""

    def __init__(self, where: str, kind: str, meta: Doc, spec: Doc) -> None:
        self.where, self.kind, self.meta, self.spec = where, kind, meta, spec

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.meta.get("labels") or {})

    def containers(self) -> Iterator[Doc]:
        yield from self.spec.get("initContainers") or []
        yield from self.spec["containers"]


def base_job_template(docs: list[Doc]) -> Doc:
    (cm,) = [d for d in docs if d["kind"] == "ConfigMap" and "base-job-template.json" in d["data"]]
    return json.loads(cm["data"]["base-job-template.json"])


def pods(docs: list[Doc]) -> list[Pod]:
    found = []
    for d in docs:
        name = f"{d['kind']}/{d['metadata']['name']}"
        if d["kind"] == "Pod":
            found.append(Pod(name, "Pod", d["metadata"], d["spec"]))
        elif d["kind"] in ("Deployment", "StatefulSet", "Job"):
            tpl = d["spec"]["template"]
            found.append(Pod(name, d["kind"], tpl["metadata"], tpl["spec"]))
        elif d["kind"] == "CronJob":
            tpl = d["spec"]["jobTemplate"]["spec"]["template"]
            found.append(Pod(name, "CronJob", tpl["metadata"], tpl["spec"]))
    if any(d["kind"] == "Deployment" and "prefect-worker" in d["metadata"]["name"] for d in docs):
        tpl = base_job_template(docs)["job_configuration"]["job_manifest"]["spec"]["template"]
        found.append(Pod("work-pool base job template", "Job", tpl["metadata"], tpl["spec"]))
    return found


@pytest.fixture(params=SCENARIOS)
def docs(request: pytest.FixtureRequest, render: Render) -> list[Doc]:
    return render(request.param, NEW_KUBE)


def test_every_container_is_hardened(docs: list[Doc]) -> None:
    problems = []
    for pod in pods(docs):
        psc = pod.spec.get("securityContext") or {}
        assert pod.spec.get("hostNetwork") is not True, pod.where
        for c in pod.containers():
            sc = c.get("securityContext") or {}
            where = f"{pod.where} container {c['name']}"
            if not (sc.get("runAsNonRoot") or psc.get("runAsNonRoot")):
                problems.append(f"{where}: not runAsNonRoot")
            if (sc.get("runAsUser", psc.get("runAsUser")) or 0) == 0:
                problems.append(f"{where}: runs as uid 0 or an unset uid")
            if sc.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{where}: root filesystem is writable")
            if sc.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{where}: privilege escalation allowed")
            if sc.get("privileged"):
                problems.append(f"{where}: privileged")
            if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
                problems.append(f"{where}: capabilities not dropped")
            if (sc.get("capabilities") or {}).get("add"):
                problems.append(f"{where}: adds capabilities")
            seccomp = (sc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
            if seccomp != "RuntimeDefault":
                problems.append(f"{where}: seccomp {seccomp}")
    assert problems == []


def test_every_container_has_requests_and_limits(docs: list[Doc]) -> None:
    problems = []
    for pod in pods(docs):
        for c in pod.containers():
            res = c.get("resources") or {}
            for part in ("requests", "limits"):
                for resource in ("cpu", "memory"):
                    if resource not in (res.get(part) or {}):
                        problems.append(f"{pod.where}/{c['name']}: no {part}.{resource}")
    assert problems == []


def test_long_running_containers_have_probes(docs: list[Doc]) -> None:
    served = {  # components behind a Service need readiness too
        d["spec"]["selector"]["app.kubernetes.io/component"] for d in docs if d["kind"] == "Service"
    }
    problems = []
    for pod in pods(docs):
        if pod.kind not in LONG_RUNNING:
            continue
        for c in pod.spec["containers"]:
            if "livenessProbe" not in c:
                problems.append(f"{pod.where}/{c['name']}: no livenessProbe")
            if pod.labels["app.kubernetes.io/component"] in served and "readinessProbe" not in c:
                problems.append(f"{pod.where}/{c['name']}: no readinessProbe")
    assert problems == []


def test_every_pod_and_object_carries_an_activity_label(docs: list[Doc]) -> None:
    for pod in pods(docs):
        assert pod.labels.get("driftloop.io/activity") in ACTIVITIES, pod.where
    for d in docs:
        labels = d["metadata"].get("labels") or {}
        assert labels.get("driftloop.io/activity") in ACTIVITIES, d["metadata"]["name"]


def test_activity_labels_attribute_costs(render: Render) -> None:
    docs = render("ingress-autoscaling", NEW_KUBE)
    activity = {p.where: p.labels["driftloop.io/activity"] for p in pods(docs)}
    assert activity["Deployment/rel-driftloop-serving"] == "serving"
    assert activity["CronJob/rel-driftloop-monitoring"] == "monitoring"
    assert activity["work-pool base job template"] == "training"
    assert activity["Deployment/rel-driftloop-mlflow"] == "platform"


def test_services_and_workloads_select_their_own_pods(docs: list[Doc]) -> None:
    workload_pods = [p for p in pods(docs) if p.kind in LONG_RUNNING]
    for d in docs:
        if d["kind"] in ("Deployment", "StatefulSet"):
            selector = d["spec"]["selector"]["matchLabels"]
            labels = d["spec"]["template"]["metadata"]["labels"]
            assert selector.items() <= labels.items(), d["metadata"]["name"]
        if d["kind"] == "Service":
            selector = d["spec"]["selector"]
            matches = [p for p in workload_pods if selector.items() <= p.labels.items()]
            assert len(matches) == 1, f"Service {d['metadata']['name']} selects {len(matches)}"
            ports = {
                port["name"] for c in matches[0].spec["containers"] for port in c.get("ports", [])
            }
            for port in d["spec"]["ports"]:
                assert port["targetPort"] in ports, d["metadata"]["name"]


def test_hpa_pdb_and_ingress_point_at_existing_objects(render: Render) -> None:
    docs = render("ingress-autoscaling", NEW_KUBE)
    names = {(d["kind"], d["metadata"]["name"]) for d in docs}
    services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"}
    (hpa,) = [d for d in docs if d["kind"] == "HorizontalPodAutoscaler"]
    assert ("Deployment", hpa["spec"]["scaleTargetRef"]["name"]) in names
    (deployment,) = [
        d
        for d in docs
        if d["kind"] == "Deployment"
        and d["metadata"]["name"] == hpa["spec"]["scaleTargetRef"]["name"]
    ]
    assert "replicas" not in deployment["spec"], "the HPA owns the replica count"
    (pdb,) = [d for d in docs if d["kind"] == "PodDisruptionBudget"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    (ingress,) = [d for d in docs if d["kind"] == "Ingress"]
    for rule in ingress["spec"]["rules"]:
        backend = rule["http"]["paths"][0]["backend"]["service"]
        service = services[backend["name"]]
        assert backend["port"]["number"] in [p["port"] for p in service["spec"]["ports"]]


def test_rbac_has_no_wildcards_and_only_the_worker_creates_jobs(docs: list[Doc]) -> None:
    assert not [d for d in docs if d["kind"] in ("ClusterRole", "ClusterRoleBinding")]
    roles = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Role"}
    for role in roles.values():
        for rule in role["rules"]:
            for field in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule.get(field, []), (role["metadata"]["name"], rule)
    job_creators = {
        name
        for name, role in roles.items()
        for rule in role["rules"]
        if "jobs" in rule["resources"] and {"create", "*"} & set(rule["verbs"])
    }
    assert job_creators == {"rel-driftloop-prefect-worker"}
    bound: set[str] = set()
    for binding in (d for d in docs if d["kind"] == "RoleBinding"):
        subjects = {(s["kind"], s["name"]) for s in binding["subjects"]}
        assert subjects == {("ServiceAccount", binding["roleRef"]["name"])}
        assert binding["roleRef"]["name"] in roles
        bound |= {name for _, name in subjects}
    assert bound == API_CLIENT_ACCOUNTS


def test_only_the_worker_mounts_an_api_token(docs: list[Doc]) -> None:
    accounts = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ServiceAccount"}
    for pod in pods(docs):
        account = pod.spec.get("serviceAccountName")
        assert account, f"{pod.where} uses the namespace's default ServiceAccount"
        calls_api = account in API_CLIENT_ACCOUNTS
        assert pod.spec.get("automountServiceAccountToken") is calls_api, pod.where
        assert account in accounts, pod.where
    for name, sa in accounts.items():
        expected = name in API_CLIENT_ACCOUNTS
        assert sa.get("automountServiceAccountToken") is expected, name


def test_one_service_account_per_component(docs: list[Doc]) -> None:
    by_component: dict[str, set[str]] = {}
    for pod in pods(docs):
        component = pod.labels["app.kubernetes.io/component"]
        account = pod.spec["serviceAccountName"]
        by_component.setdefault(account, set()).add(component)
    assert all(len(components) == 1 for components in by_component.values()), by_component


def selects(policy: Doc, labels: dict[str, str]) -> bool:
    selector = policy["spec"]["podSelector"]
    if not (selector.get("matchLabels") or {}).items() <= labels.items():
        return False
    for expr in selector.get("matchExpressions") or []:
        assert expr["operator"] == "In"
        if labels.get(expr["key"]) not in expr["values"]:
            return False
    return True


def test_network_policies_deny_by_default(docs: list[Doc]) -> None:
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    deny = [
        p
        for p in policies
        if set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"}
        and not p["spec"].get("ingress")
        and not p["spec"].get("egress")
        and p["metadata"]["name"].endswith("default-deny")
    ]
    assert len(deny) == 1
    for pod in pods(docs):
        assert selects(deny[0], pod.labels), f"{pod.where} escapes the default deny"
        allowing = [p for p in policies if p is not deny[0] and selects(p, pod.labels)]
        component = pod.labels["app.kubernetes.io/component"]
        # DNS plus at least one policy of its own (the worker, clients, servers ...).
        assert len(allowing) >= 2, f"{pod.where} ({component}) has no allow policy"


def test_network_policies_limit_the_database_to_its_servers(render: Render) -> None:
    docs = render("default", NEW_KUBE)
    (policy,) = [
        d
        for d in docs
        if d["kind"] == "NetworkPolicy" and d["metadata"]["name"] == "rel-driftloop-postgresql"
    ]
    servers, test = policy["spec"]["ingress"]
    components = {
        peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"]
        for peer in servers["from"]
    }
    assert components == {"mlflow", "prefect-server"}
    # ... and the PostgreSQL `helm test` pod only (not the other test pods).
    (peer,) = test["from"]
    assert peer["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "test"
    assert peer["podSelector"]["matchLabels"]["driftloop.io/test"] == "postgresql"
    assert test["ports"] == servers["ports"]
    # Without test pods, only the servers.
    docs = render("default", NEW_KUBE, "--set", "tests.enabled=false")
    (policy,) = [
        d
        for d in docs
        if d["kind"] == "NetworkPolicy" and d["metadata"]["name"] == "rel-driftloop-postgresql"
    ]
    assert policy["spec"]["ingress"] == [servers]


def secret_data(docs: list[Doc]) -> dict[tuple[str, str], str]:
    return {
        (d["metadata"]["name"], key): value
        for d in docs
        if d["kind"] == "Secret"
        for key, value in (d.get("data") or {}).items()
    }


def test_generated_secrets_differ_per_render(helm_bin: Path, render: Render) -> None:
    """No Secret value comes from values.yaml: two renders generate different values (in a
    cluster, `lookup` keeps the first ones across upgrades)."""
    first = secret_data(render("default", NEW_KUBE))
    second = secret_data(render("default", NEW_KUBE, "--set", "commonLabels.render=two"))
    assert first.keys() == second.keys()
    assert {k[0] for k in first} == {
        "rel-driftloop-postgresql",
        "rel-driftloop-redis",
        "rel-driftloop-serving-auth",
        "rel-driftloop-mlflow-auth",
        "rel-driftloop-prefect-auth",
    }
    for key, value in first.items():
        assert value != second[key], f"{key} is the same in two renders"


def test_serving_sees_only_token_hashes(render: Render) -> None:
    import base64
    import hashlib

    docs = render("default", NEW_KUBE)
    data = {k: base64.b64decode(v).decode() for k, v in secret_data(docs).items()}
    admin = data[("rel-driftloop-serving-auth", "admin-token")]
    assert len(admin) >= 32
    digest = hashlib.sha256(admin.encode()).hexdigest()
    assert json.loads(data[("rel-driftloop-serving-auth", "admin-tokens")]) == [f"sha256:{digest}"]


SECRET_NAME = re.compile(r"PASSWORD|TOKEN|SECRET|ACCESS_KEY", re.IGNORECASE)


def test_no_secret_values_in_plain_text(docs: list[Doc]) -> None:
    secrets = {v for v in secret_data(docs).values()}
    problems = []
    for pod in pods(docs):
        for c in pod.containers():
            for env in c.get("env") or []:
                value = env.get("value")
                if SECRET_NAME.search(env["name"]) and "valueFrom" not in env:
                    problems.append(f"{pod.where}/{c['name']}: {env['name']} is plain text")
                if value and re.search(r"://[^/@\s]+:[^$/@\s][^/@\s]*@", value):
                    problems.append(f"{pod.where}/{c['name']}: credentials in {env['name']}")
            args = c.get("args") or []
            args = [args] if isinstance(args, str) else args  # a Prefect placeholder
            for arg in args + (c.get("command") or []):
                if re.search(r"--(requirepass|password)\b|://[^/@\s]+:[^/@\s]+@", str(arg)):
                    problems.append(f"{pod.where}/{c['name']}: secret-looking argument {arg!r}")
    assert problems == []
    # No value of any Secret appears anywhere else (base64 or plain).
    text = json.dumps([d for d in docs if d["kind"] != "Secret"])
    for value in secrets:
        import base64

        assert value not in text
        assert base64.b64decode(value).decode() not in text


def test_default_values_hold_no_secret() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    found = []

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{path}.{key}")
        elif (
            isinstance(node, str)
            and node
            and re.search(r"password|token|secretkey", path, re.I)
            and not path.endswith(("Key", "existingSecret"))
        ):
            found.append(f"{path}={node}")

    walk(values, "")
    assert found == []


def test_images_are_pinned_and_pull_policy_is_set(render: Render) -> None:
    for scenario in SCENARIOS:
        for pod in pods(render(scenario, NEW_KUBE)):
            for c in pod.containers():
                image = c["image"]
                assert ":" in image.rsplit("/", 1)[-1], image
                assert not image.endswith(":latest"), image
                assert c.get("imagePullPolicy"), (pod.where, c["name"])
    kind = render("minimal-kind", NEW_KUBE)
    policies = {c["imagePullPolicy"] for p in pods(kind) for c in p.containers()}
    driftloop_images = {
        c["image"] for p in pods(kind) for c in p.containers() if "driftloop-" in c["image"]
    }
    assert driftloop_images == {"driftloop-platform:dev", "driftloop-serving:dev"}
    assert "Never" in policies
    manifest = base_job_template(kind)["job_configuration"]["job_manifest"]
    (container,) = manifest["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "driftloop-platform:dev"
    assert container["imagePullPolicy"] == "Never"


def test_gpu_training_job_template_requests_gpus_on_gpu_nodes(render: Render) -> None:
    template = base_job_template(render("gpu-training", NEW_KUBE))
    spec = template["job_configuration"]["job_manifest"]["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 2
    assert spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert spec["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert spec["runtimeClassName"] == "nvidia"
    claims = [
        v["persistentVolumeClaim"]["claimName"]
        for v in spec["volumes"]
        if "persistentVolumeClaim" in v
    ]
    assert claims == ["rel-driftloop-state"]
    # CPU-only by default.
    default = base_job_template(render("default", NEW_KUBE))
    spec = default["job_configuration"]["job_manifest"]["spec"]["template"]["spec"]
    assert "nvidia.com/gpu" not in spec["containers"][0]["resources"]["limits"]
    assert "nodeSelector" not in spec


def test_job_template_keeps_prefect_placeholders(render: Render) -> None:
    config = base_job_template(render("default", NEW_KUBE))["job_configuration"]
    manifest = config["job_manifest"]
    assert manifest["metadata"]["generateName"] == "{{ name }}-"
    assert manifest["metadata"]["labels"] == "{{ labels }}"
    assert manifest["spec"]["backoffLimit"] == "{{ backoff_limit }}"
    env = {e["name"]: e for e in manifest["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["DRIFTLOOP_MLFLOW__TRACKING_URI"]["value"] == "http://rel-driftloop-mlflow:5000"
    assert env["DRIFTLOOP_FEATURES__ONLINE_STORE"]["value"] == "redis"
    assert "valueFrom" in env["REDIS_PASSWORD"]


def test_settings_reach_every_driftloop_process(docs: list[Doc]) -> None:
    for pod in pods(docs):
        for c in pod.spec["containers"]:
            if c["name"] not in ("serving", "prefect-job", "deploy", "monitoring"):
                continue
            names = {e["name"] for e in c["env"]}
            for needed in (
                "DRIFTLOOP_MLFLOW__TRACKING_URI",
                "DRIFTLOOP_PREFECT__API_URL",
                "DRIFTLOOP_FEATURES__REDIS_CONNECTION",
                "DRIFTLOOP_STATE_DIR",
                "DO_NOT_TRACK",
            ):
                assert needed in names, (pod.where, needed)


def test_external_mlflow_and_prefect_reach_every_process(render: Render) -> None:
    docs = render(
        "default",
        OLD_KUBE,
        "--set",
        "mlflow.enabled=false",
        "--set",
        "mlflow.externalTrackingUri=https://mlflow.example.com",
        "--set",
        "prefect.enabled=false",
        "--set",
        "prefect.externalApiUrl=https://prefect.example.com:4443/api",
    )
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert not any("mlflow" in name and kind == "Deployment" for kind, name in kinds)
    checked = 0
    for pod in pods(docs):
        for c in pod.spec["containers"]:
            env = {e["name"]: e.get("value") for e in c.get("env", [])}
            if "DRIFTLOOP_MLFLOW__TRACKING_URI" in env:
                assert env["DRIFTLOOP_MLFLOW__TRACKING_URI"] == "https://mlflow.example.com"
                assert env["DRIFTLOOP_PREFECT__API_URL"] == "https://prefect.example.com:4443/api"
                checked += 1
    assert checked >= 2
    # NetworkPolicies let the clients reach the external servers' ports (no in-cluster peer)
    policies = {d["metadata"]["name"]: d for d in docs if d["kind"] == "NetworkPolicy"}
    open_ports = {
        name: {
            p["port"]
            for rule in pol["spec"].get("egress", [])
            if "to" not in rule
            for p in rule["ports"]
        }
        for name, pol in policies.items()
    }
    assert {443, 4443} <= open_ports["rel-driftloop-clients"]
    assert 443 in open_ports["rel-driftloop-serving"]
    assert 4443 in open_ports["rel-driftloop-prefect-worker"]


def test_test_hooks_include_a_check_without_service_routing(render: Render) -> None:
    docs = render("minimal-kind", OLD_KUBE)
    hooks = {
        d["metadata"]["name"]: d
        for d in docs
        if d["kind"] == "Pod" and d["metadata"].get("annotations", {}).get("helm.sh/hook") == "test"
    }
    # One pod per component (tests/helm/test_chart_helm_tests.py), and the loopback self-check.
    assert set(hooks) == {
        f"rel-driftloop-test-{c}"
        for c in ("postgresql", "redis", "mlflow", "prefect", "serving", "serving-selfcheck")
    }
    selfcheck = hooks["rel-driftloop-test-serving-selfcheck"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in selfcheck["env"]}
    assert env["DRIFTLOOP_SERVING__HOST"] == "127.0.0.1"
    assert "127.0.0.1" in selfcheck["args"][0]
    assert '"-m", "serving"' in selfcheck["args"][0]
    # The exec probes of the kind scenario also check from inside the container.
    (serving,) = [
        d
        for d in docs
        if d["metadata"]["name"] == "rel-driftloop-serving" and d["kind"] == "Deployment"
    ]
    probe = serving["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
    assert "'http://127.0.0.1:8000/v2/health/" in probe["exec"]["command"][-1]
