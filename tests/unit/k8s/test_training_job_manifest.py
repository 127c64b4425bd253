"""The Indexed Job + headless Service that run torchrun across nodes (manifest content only;
no cluster involved)."""

from __future__ import annotations

from typing import Any

import pytest

from driftloop.errors import InvalidInputError
from driftloop.k8s import DDP_MODULE, build_training_job
from driftloop.settings import FeatureSettings, KubernetesSettings, MlflowSettings, Settings


def render(settings: Settings | None = None, **kwargs: Any) -> tuple[dict, dict]:
    from kubernetes.client import ApiClient

    args: dict[str, Any] = {
        "name": "train-42",
        "image": "driftloop-platform:1.2.3",
        "nodes": 3,
        "gpus_per_node": 4,
        "command_args": ["--epochs", "2"],
        "namespace": "ml",
    }
    args.update(kwargs)
    job, service = build_training_job(settings or Settings(), **args)
    client = ApiClient()
    return client.sanitize_for_serialization(job), client.sanitize_for_serialization(service)


def container(job: dict) -> dict:
    (c,) = job["spec"]["template"]["spec"]["containers"]
    return c


def env(job: dict) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(job)["env"]}


def test_job_is_indexed_with_one_pod_per_node() -> None:
    job, _ = render()
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed"
    assert spec["completions"] == spec["parallelism"] == 3
    assert spec["template"]["spec"]["restartPolicy"] == "Never"
    assert spec["backoffLimit"] == 0
    assert spec["ttlSecondsAfterFinished"] == 3600
    assert job["metadata"] == {
        "name": "train-42",
        "namespace": "ml",
        "labels": job["metadata"]["labels"],
    }


def test_torchrun_uses_static_rendezvous_on_pod_zero() -> None:
    job, service = render()
    c = container(job)
    assert c["command"] == ["torchrun"]
    assert c["args"] == [
        "--nnodes=3",
        "--nproc_per_node=4",
        "--node_rank=$(NODE_RANK)",
        "--master_addr=train-42-0.train-42-rdzv",
        "--master_port=29500",
        "-m",
        DDP_MODULE,
        "--epochs",
        "2",
    ]
    # The rank is the pod's completion index, defined before it is used in args.
    rank = c["env"][0]
    assert rank["name"] == "NODE_RANK"
    assert rank["valueFrom"]["fieldRef"]["fieldPath"] == (
        "metadata.annotations['batch.kubernetes.io/job-completion-index']"
    )
    # Pod 0's DNS name exists: subdomain = headless Service selecting the Job's pods.
    assert job["spec"]["template"]["spec"]["subdomain"] == service["metadata"]["name"]
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["selector"] == {"job-name": "train-42"}
    assert service["spec"]["publishNotReadyAddresses"] is True
    assert service["spec"]["ports"][0]["port"] == 29500
    assert c["ports"][0]["containerPort"] == 29500


def test_gpus_are_limits_and_cpu_runs_one_process_per_node() -> None:
    job, _ = render(gpus_per_node=2)
    res = container(job)["resources"]
    assert res["limits"]["nvidia.com/gpu"] == "2"
    assert env(job)["DRIFTLOOP_TRAINING__DEVICE"] == "cuda"
    cpu_job, _ = render(gpus_per_node=0, nodes=2)
    c = container(cpu_job)
    assert "nvidia.com/gpu" not in c["resources"]["limits"]
    assert "--nproc_per_node=1" in c["args"]
    assert "--nnodes=2" in c["args"]
    assert env(cpu_job)["DRIFTLOOP_TRAINING__DEVICE"] == "cpu"


def test_pod_is_hardened_and_labelled_for_cost() -> None:
    job, service = render()
    pod = job["spec"]["template"]["spec"]
    c = container(job)
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    mounts = {m["mountPath"] for m in c["volumeMounts"]}
    assert {"/tmp", "/var/lib/driftloop", "/dev/shm"} <= mounts
    assert c["resources"]["requests"] == {"cpu": "2", "memory": "8Gi"}
    for labels in (
        job["metadata"]["labels"],
        job["spec"]["template"]["metadata"]["labels"],
        service["metadata"]["labels"],
    ):
        assert labels["driftloop.io/activity"] == "training"


def test_settings_reach_the_pods_without_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(
        mlflow=MlflowSettings(tracking_uri="http://mlflow.ml:5000"),
        features=FeatureSettings(
            online_store="redis", redis_connection="redis:6379,password=hunter2"
        ),
        kubernetes=KubernetesSettings(env_from_secrets=["driftloop-redis-env"]),
    )
    job, _ = render(settings)
    values = env(job)
    assert values["DRIFTLOOP_MLFLOW__TRACKING_URI"] == "http://mlflow.ml:5000"
    assert values["MLFLOW_TRACKING_URI"] == "http://mlflow.ml:5000"
    assert values["DRIFTLOOP_FEATURES__ONLINE_STORE"] == "redis"
    assert "hunter2" not in str(job)
    assert container(job)["envFrom"] == [{"secretRef": {"name": "driftloop-redis-env"}}]
    # The caller's training settings travel as one JSON value that pydantic-settings reads in
    # the pod, with the device set by the GPU count.
    monkeypatch.setenv("DRIFTLOOP_TRAINING", values["DRIFTLOOP_TRAINING"])
    monkeypatch.setenv("DRIFTLOOP_TRAINING__DEVICE", values["DRIFTLOOP_TRAINING__DEVICE"])
    restored = Settings()
    assert restored.training == settings.training.model_copy(update={"device": "cuda"})


def test_kubernetes_settings_shape_the_pod() -> None:
    settings = Settings(
        kubernetes=KubernetesSettings(
            node_selector={"pool": "gpu"},
            tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
            state_claim="driftloop-state",
            service_account="trainer",
            master_port=23456,
            ttl_seconds_after_finished=60,
            backoff_limit=2,
        )
    )
    job, service = render(settings, ttl_seconds=None)
    pod = job["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"pool": "gpu"}
    assert pod["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert pod["serviceAccountName"] == "trainer"
    claims = [v for v in pod["volumes"] if "persistentVolumeClaim" in v]
    assert claims[0]["persistentVolumeClaim"]["claimName"] == "driftloop-state"
    assert "--master_port=23456" in container(job)["args"]
    assert service["spec"]["ports"][0]["port"] == 23456
    assert job["spec"]["ttlSecondsAfterFinished"] == 60
    assert job["spec"]["backoffLimit"] == 2
    job, _ = render(settings, ttl_seconds=5)
    assert job["spec"]["ttlSecondsAfterFinished"] == 5


@pytest.mark.parametrize("version", ["1.25.0", "1.31.0"])
def test_manifests_validate_against_the_kubernetes_schema(version: str) -> None:
    import kubernetes_validate

    settings = Settings(
        kubernetes=KubernetesSettings(
            tolerations=[{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
            node_selector={"pool": "gpu"},
            env_from_secrets=["s"],
        )
    )
    for manifest in render(settings):
        kubernetes_validate.validate(manifest, version, strict=True)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "Train_1"}, "DNS label"),
        ({"name": "x" * 60}, "at most"),
        ({"nodes": 0}, "nodes must be >= 1"),
        ({"gpus_per_node": -1}, "gpus_per_node must be >= 0"),
    ],
)
def test_bad_requests_are_rejected(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        render(**kwargs)
