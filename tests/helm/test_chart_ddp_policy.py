"""Distributed training pods (`driftloop train --on kubernetes`) belong to the release: the chart
hands job.py its selector labels (DRIFTLOOP_KUBERNETES__POD_LABELS, worker/_ddp.tpl), so the
default-deny, DNS and training NetworkPolicies select the pods job.py builds, and the training
policy lets the rendezvous and collective traffic in from training pods only.

The pods are built by driftloop.k8s.build_training_job from Settings read from the env values the
chart renders (no cluster: the manifests are matched against the rendered policies)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from chart_support import NEW_KUBE, OLD_KUBE, Doc

from driftloop.errors import InvalidInputError
from driftloop.k8s import build_training_job
from driftloop.settings import Settings

pytestmark = pytest.mark.helm

DDP_ENV = (
    "DRIFTLOOP_KUBERNETES__POD_LABELS",
    "DRIFTLOOP_KUBERNETES__MASTER_PORT",
    "DRIFTLOOP_KUBERNETES__HOST_NETWORK",
)
TRAINING = "app.kubernetes.io/component"


def env_lists(node: Any) -> Iterator[list[dict[str, Any]]]:
    """Every container ``env`` list in a rendered object (any depth)."""
    if isinstance(node, dict):
        env = node.get("env")
        if isinstance(env, list) and "image" in node:
            yield env
        for value in node.values():
            yield from env_lists(value)
    elif isinstance(node, list):
        for item in node:
            yield from env_lists(item)


def ddp_env(docs: list[Doc]) -> dict[str, str]:
    """The DDP settings every driftloop container gets (all containers that carry them agree)."""
    seen: dict[str, set[str]] = {name: set() for name in DDP_ENV}
    for doc in docs:
        for env in env_lists(doc):
            for var in env:
                if var.get("name") in seen:
                    seen[var["name"]].add(var["value"])
    missing = [name for name, values in seen.items() if not values]
    assert not missing, (
        f"no container carries {missing}: driftloop.env must include driftloop.ddp.env"
    )
    assert all(len(values) == 1 for values in seen.values()), seen
    return {name: values.pop() for name, values in seen.items()}


def settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings()


def training_pod_labels(settings: Settings, nodes: int = 2) -> tuple[dict[str, str], dict]:
    from kubernetes.client import ApiClient

    job, service = build_training_job(
        settings,
        name="train-1",
        image="driftloop-platform:0.1.0",
        nodes=nodes,
        gpus_per_node=0,
        command_args=[],
        namespace="ml",
    )
    manifest = ApiClient().sanitize_for_serialization(job)
    assert service.metadata is not None
    labels = manifest["spec"]["template"]["metadata"]["labels"]
    # What the Job controller adds to every pod.
    return {**labels, "job-name": "train-1", "batch.kubernetes.io/job-name": "train-1"}, manifest


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Kubernetes label-selector semantics (matchLabels and matchExpressions)."""
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[op]
        if not ok:
            return False
    return True


def policies(docs: list[Doc]) -> dict[str, Doc]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == "NetworkPolicy"}


def allows_port(rule: dict[str, Any], port: int) -> bool:
    if not rule.get("ports"):
        return True
    for entry in rule["ports"]:
        first = entry.get("port")
        if first is None or first == port:
            return True
        if isinstance(first, int) and entry.get("endPort") and first <= port <= entry["endPort"]:
            return True
    return False


def only_training_peers(peers: list[dict[str, Any]], labels: dict[str, str]) -> bool:
    """Every peer is a podSelector of this namespace that selects training pods only."""
    if not peers:
        return False  # no "from"/"to": everyone
    for peer in peers:
        if set(peer) != {"podSelector"}:
            return False
        selector = peer["podSelector"]
        if (selector.get("matchLabels") or {}).get(TRAINING) != "training":
            return False
        if not selects(selector, labels):
            return False
    return True


@pytest.fixture
def default_docs(render: Callable[..., list[Doc]]) -> list[Doc]:
    return render("default", NEW_KUBE)


def test_the_ddp_env_is_the_release_selector_plus_the_activity(
    render: Callable[..., list[Doc]], default_docs: list[Doc]
) -> None:
    env = ddp_env(default_docs)
    deny = policies(default_docs)["rel-driftloop-default-deny"]
    release_selector = deny["spec"]["podSelector"]["matchLabels"]
    assert release_selector == {
        "app.kubernetes.io/name": "driftloop",
        "app.kubernetes.io/instance": "rel",
    }
    assert json.loads(env["DRIFTLOOP_KUBERNETES__POD_LABELS"]) == {
        **release_selector,
        "driftloop.io/activity": "training",
    }
    assert env["DRIFTLOOP_KUBERNETES__HOST_NETWORK"] == "false"
    # Follows the chart's naming (nameOverride changes the release selector).
    renamed = render("default", NEW_KUBE, "--set", "nameOverride=dl")
    labels = json.loads(ddp_env(renamed)["DRIFTLOOP_KUBERNETES__POD_LABELS"])
    assert labels["app.kubernetes.io/name"] == "dl"
    assert labels["app.kubernetes.io/instance"] == "rel"


def test_the_release_policies_select_the_training_pods_job_py_builds(
    default_docs: list[Doc], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_from(ddp_env(default_docs), monkeypatch)
    labels, _ = training_pod_labels(settings)
    by_name = policies(default_docs)
    for name in ("rel-driftloop-default-deny", "rel-driftloop-allow-dns", "rel-driftloop-training"):
        assert selects(by_name[name]["spec"]["podSelector"], labels), name
    training = by_name["rel-driftloop-training"]["spec"]["podSelector"]
    assert training == {
        "matchLabels": {
            "app.kubernetes.io/name": "driftloop",
            "app.kubernetes.io/instance": "rel",
            TRAINING: "training",
        }
    }
    # ... and not the other pods of the release (flow runs, serving, ...).
    pods = [
        d["spec"]["template"]["metadata"]["labels"]
        for d in default_docs
        if d["kind"] in ("Deployment", "StatefulSet", "Job")
    ]
    assert pods
    assert not any(selects(training, pod) for pod in pods)


def test_without_the_release_labels_the_pods_were_not_covered(
    default_docs: list[Doc],
) -> None:
    """What the env fixes: job.py's own labels do not carry the release's instance label."""
    labels, _ = training_pod_labels(Settings())
    by_name = policies(default_docs)
    assert not selects(by_name["rel-driftloop-default-deny"]["spec"]["podSelector"], labels)


@pytest.mark.parametrize("kube", [NEW_KUBE, OLD_KUBE])
def test_rendezvous_traffic_comes_only_from_training_pods(
    render: Callable[..., list[Doc]], kube: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = render("default", kube)
    settings = settings_from(ddp_env(docs), monkeypatch)
    labels, manifest = training_pod_labels(settings)
    (container,) = manifest["spec"]["template"]["spec"]["containers"]
    (rdzv,) = container["ports"]
    port = rdzv["containerPort"]
    assert port == settings.kubernetes.master_port == 29500
    assert f"--master_port={port}" in container["args"]
    covering = [p for p in policies(docs).values() if selects(p["spec"]["podSelector"], labels)]
    ingress = [
        rule
        for p in covering
        if "Ingress" in p["spec"].get("policyTypes", ["Ingress"])
        for rule in p["spec"].get("ingress") or []
    ]
    allowing = [rule for rule in ingress if allows_port(rule, port)]
    assert allowing, "nothing lets the other ranks reach the rendezvous port"
    for rule in allowing:
        assert only_training_peers(rule.get("from") or [], labels), rule
    # Egress of the ranks to each other, on the same ports.
    egress = [
        rule
        for p in covering
        for rule in p["spec"].get("egress") or []
        if only_training_peers(rule.get("to") or [], labels)
    ]
    assert any(allows_port(rule, port) for rule in egress)


def test_collective_ports_are_the_ephemeral_range_on_current_clusters(
    default_docs: list[Doc], render: Callable[..., list[Doc]]
) -> None:
    spec = policies(default_docs)["rel-driftloop-training"]["spec"]
    (rule,) = spec["ingress"]
    assert rule["ports"] == [
        {"port": 29500, "protocol": "TCP"},
        {"port": 32768, "endPort": 60999, "protocol": "TCP"},
    ]
    assert not allows_port(rule, 8000)
    # Kubernetes 1.20 has no endPort: every port, from training pods only.
    old = policies(render("default", OLD_KUBE))["rel-driftloop-training"]["spec"]
    (old_rule,) = old["ingress"]
    assert "ports" not in old_rule
    assert set(old_rule) == {"from"}


def test_training_pods_reach_mlflow_and_each_other_only(
    default_docs: list[Doc], monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = policies(default_docs)["rel-driftloop-training"]["spec"]
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    labels, _ = training_pod_labels(settings_from(ddp_env(default_docs), monkeypatch))
    peers, mlflow = spec["egress"]
    assert only_training_peers(peers["to"], labels)
    assert mlflow == {
        "to": [
            {
                "podSelector": {
                    "matchLabels": {
                        "app.kubernetes.io/name": "driftloop",
                        "app.kubernetes.io/instance": "rel",
                        TRAINING: "mlflow",
                    }
                }
            }
        ],
        "ports": [{"port": 5000, "protocol": "TCP"}],
    }


def test_mlflow_lets_the_training_pods_in(
    default_docs: list[Doc], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rank 0 tracks and registers the run: MLflow's own policy must admit the training pods
    (the training policy's egress alone does not open the server's ingress)."""
    labels, _ = training_pod_labels(settings_from(ddp_env(default_docs), monkeypatch))
    mlflow = policies(default_docs)["rel-driftloop-mlflow"]["spec"]
    admitted = [
        rule
        for rule in mlflow["ingress"]
        if any(
            set(peer) == {"podSelector"} and selects(peer["podSelector"], labels)
            for peer in rule.get("from") or []
        )
    ]
    assert admitted, "templates/mlflow/networkpolicy.yaml does not admit training pods"


def test_extra_egress_and_an_external_mlflow(render: Callable[..., list[Doc]]) -> None:
    docs = render(
        "default",
        NEW_KUBE,
        "--set",
        "mlflow.enabled=false,mlflow.externalTrackingUri=https://mlflow.example.com",
        "--set-json",
        'networkPolicy.extraEgress=[{"ports":[{"port":9000,"protocol":"TCP"}]}]',
    )
    egress = policies(docs)["rel-driftloop-training"]["spec"]["egress"]
    assert {"ports": [{"port": 443, "protocol": "TCP"}]} in egress
    assert {"ports": [{"port": 9000, "protocol": "TCP"}]} in egress


@pytest.mark.parametrize("off", ["networkPolicy.enabled=false", "worker.enabled=false"])
def test_no_training_policy_without_policies_or_worker(
    render: Callable[..., list[Doc]], off: str
) -> None:
    docs = render("default", NEW_KUBE, "--set", off)
    assert "rel-driftloop-training" not in policies(docs)


def test_host_network_mode_runs_one_node_on_loopback(
    render: Callable[..., list[Doc]], monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = render("default", NEW_KUBE, "--set", "hostNetwork.enabled=true,probes.mode=exec")
    env = ddp_env(docs)
    assert env["DRIFTLOOP_KUBERNETES__HOST_NETWORK"] == "true"
    settings = settings_from(env, monkeypatch)
    labels, manifest = training_pod_labels(settings, nodes=1)
    pod = manifest["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is True
    assert pod["dnsPolicy"] == "ClusterFirstWithHostNet"
    assert "--master_addr=127.0.0.1" in pod["containers"][0]["args"]
    assert labels["app.kubernetes.io/instance"] == "rel"
    with pytest.raises(InvalidInputError, match="one node only"):
        training_pod_labels(settings, nodes=2)
