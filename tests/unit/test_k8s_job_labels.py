"""Labels and host network of the distributed-training manifests (driftloop.k8s.job):
``kubernetes.pod_labels`` reach the Job, its pods and the rendezvous Service without replacing the
labels the pods are selected by; ``kubernetes.host_network`` runs one pod on the node's network
with rank 0 at 127.0.0.1. Manifest content only: no cluster involved."""

from __future__ import annotations

import json
from typing import Any

import pytest

from driftloop.errors import InvalidInputError
from driftloop.k8s import build_training_job
from driftloop.k8s.job import SELECTION_LABELS, labels_for
from driftloop.settings import KubernetesSettings, Settings

RELEASE = {
    "app.kubernetes.io/name": "driftloop",
    "app.kubernetes.io/instance": "prod",
    "driftloop.io/activity": "training",
}


def build(kubernetes: KubernetesSettings, **kwargs: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    from kubernetes.client import ApiClient

    args: dict[str, Any] = {
        "name": "train-7",
        "image": "driftloop-platform:1.2.3",
        "nodes": 2,
        "gpus_per_node": 0,
        "command_args": [],
        "namespace": "ml",
    }
    args.update(kwargs)
    job, service = build_training_job(Settings(kubernetes=kubernetes), **args)
    client = ApiClient()
    return client.sanitize_for_serialization(job), client.sanitize_for_serialization(service)


def all_labels(job: dict[str, Any], service: dict[str, Any]) -> list[dict[str, str]]:
    return [
        job["metadata"]["labels"],
        job["spec"]["template"]["metadata"]["labels"],
        service["metadata"]["labels"],
    ]


def test_configured_labels_reach_the_job_its_pods_and_the_service() -> None:
    job, service = build(KubernetesSettings(pod_labels={**RELEASE, "team": "risk"}))
    for labels in all_labels(job, service):
        assert labels["app.kubernetes.io/instance"] == "prod"
        assert labels["team"] == "risk"
        # job.py's own labels stay.
        assert labels["app.kubernetes.io/component"] == "training"
        assert labels["driftloop.io/training-job"] == "train-7"
        assert labels["driftloop.io/activity"] == "training"
    # The Service still selects the Job's pods by the Job controller's label.
    assert service["spec"]["selector"] == {"job-name": "train-7"}


def test_without_configured_labels_the_manifests_are_unchanged() -> None:
    job, service = build(KubernetesSettings())
    for labels in all_labels(job, service):
        assert labels == labels_for("train-7")
        assert "app.kubernetes.io/instance" not in labels


def test_configured_labels_may_replace_the_chart_name_label() -> None:
    """A chart installed with nameOverride selects its pods by that name."""
    job, _ = build(KubernetesSettings(pod_labels={"app.kubernetes.io/name": "dl"}))
    assert job["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"] == "dl"


@pytest.mark.parametrize(
    "key",
    sorted(
        {
            "app.kubernetes.io/component",
            "driftloop.io/training-job",
            "job-name",
            "batch.kubernetes.io/job-name",
            "controller-uid",
        }
    ),
)
def test_configured_labels_cannot_override_selection_labels(key: str) -> None:
    assert key in SELECTION_LABELS
    with pytest.raises(InvalidInputError, match=f"may not set {key}"):
        build(KubernetesSettings(pod_labels={**RELEASE, key: "other"}))


def test_labels_for_keeps_the_selection_labels_whatever_it_is_given() -> None:
    labels = labels_for(
        "train-7",
        {"app.kubernetes.io/component": "serving", "driftloop.io/training-job": "x", "a": "b"},
    )
    assert labels["app.kubernetes.io/component"] == "training"
    assert labels["driftloop.io/training-job"] == "train-7"
    assert labels["a"] == "b"


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ({"bad key!": "x"}, "not a valid label key"),
        ({"Example.COM/team": "x"}, "not a valid label key"),
        ({"x" * 64: "x"}, "not a valid label key"),
        ({"team": "y" * 64}, "not a valid label value"),
        ({"team": "risk team"}, "not a valid label value"),
        ({"team": "-risk"}, "not a valid label value"),
    ],
)
def test_invalid_labels_are_refused_before_anything_is_created(
    labels: dict[str, str], message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        build(KubernetesSettings(pod_labels=labels))


def test_the_settings_read_labels_and_host_network_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The Helm chart sets these two variables (worker/_ddp.tpl): JSON and a boolean."""
    monkeypatch.setenv("DRIFTLOOP_KUBERNETES__POD_LABELS", json.dumps(RELEASE))
    monkeypatch.setenv("DRIFTLOOP_KUBERNETES__HOST_NETWORK", "true")
    k8s = Settings().kubernetes
    assert k8s.pod_labels == RELEASE
    assert k8s.host_network is True
    monkeypatch.delenv("DRIFTLOOP_KUBERNETES__POD_LABELS")
    monkeypatch.delenv("DRIFTLOOP_KUBERNETES__HOST_NETWORK")
    assert Settings().kubernetes.pod_labels == {}
    assert Settings().kubernetes.host_network is False


def test_host_network_runs_one_pod_on_the_node_with_rank_zero_on_loopback() -> None:
    job, service = build(KubernetesSettings(host_network=True), nodes=1)
    pod = job["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is True
    assert pod["dnsPolicy"] == "ClusterFirstWithHostNet"
    (container,) = pod["containers"]
    args = container["args"]
    assert "--master_addr=127.0.0.1" in args
    assert "--nnodes=1" in args
    assert "--node_rank=0" in args
    assert job["spec"]["completions"] == job["spec"]["parallelism"] == 1
    assert service["spec"]["ports"][0]["port"] == 29500


def test_without_host_network_the_pods_use_the_cluster_network() -> None:
    job, _ = build(KubernetesSettings())
    pod = job["spec"]["template"]["spec"]
    assert "hostNetwork" not in pod
    assert "dnsPolicy" not in pod
    args = pod["containers"][0]["args"]
    assert "--master_addr=train-7-0.train-7-rdzv" in args
    assert "--node_rank=$(NODE_RANK)" in args


@pytest.mark.parametrize("nodes", [2, 5])
def test_host_network_refuses_more_than_one_node(nodes: int) -> None:
    with pytest.raises(InvalidInputError, match=f"nodes={nodes} is refused") as info:
        build(KubernetesSettings(host_network=True), nodes=nodes)
    assert "kubernetes.host_network" in str(info.value)
    assert "one node only" in str(info.value)


@pytest.mark.parametrize("version", ["1.25.0", "1.31.0"])
def test_labelled_host_network_manifests_validate_strictly(version: str) -> None:
    import kubernetes_validate

    for manifest in build(KubernetesSettings(pod_labels=RELEASE, host_network=True), nodes=1):
        kubernetes_validate.validate(manifest, version, strict=True)
