"""Manifests of a distributed training run on Kubernetes: an Indexed Job of ``nodes`` pods that
each run ``torchrun`` (static rendezvous on pod 0), and the headless Service that gives pod 0 a
stable DNS name (``<job>-0.<service>``).

``settings.kubernetes.pod_labels`` are added to the Job, its pods and the Service (the Helm chart
sets its release's selector labels there, so the release's NetworkPolicies cover the training
pods); they may not replace the labels the pods are selected by. With
``settings.kubernetes.host_network`` (the chart's test mode) the one pod runs on the node's
network and rank 0 is 127.0.0.1.

Pure functions over the ``kubernetes`` client models: nothing here talks to a cluster.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

from driftloop.errors import InvalidInputError
from driftloop.settings import Settings

if TYPE_CHECKING:
    from kubernetes.client import V1EnvVar, V1Job, V1Service

DDP_MODULE = "driftloop.training.ddp"
STATE_DIR = "/var/lib/driftloop"
RANK_ENV = "NODE_RANK"
# The Job controller stores each pod's index in this annotation (Kubernetes >= 1.21).
INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
RUN_AS = 10001
_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
# Pod hostnames are "<job>-<index>" and must stay a DNS label (63): keep room for the index.
MAX_NAME = 52
#: Rank 0's address when the pods run on the node's network (one node only).
LOOPBACK = "127.0.0.1"
COMPONENT_LABEL = "app.kubernetes.io/component"
JOB_LABEL = "driftloop.io/training-job"
#: Labels the training pods are selected by (this code, the chart's NetworkPolicy for training
#: pods, the Job controller): ``kubernetes.pod_labels`` may not set them.
SELECTION_LABELS = frozenset(
    {
        COMPONENT_LABEL,
        JOB_LABEL,
        "job-name",
        "controller-uid",
        "batch.kubernetes.io/job-name",
        "batch.kubernetes.io/controller-uid",
        INDEX_ANNOTATION,
    }
)
_LABEL_NAME = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
_LABEL_PREFIX = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def labels_for(name: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Labels of the Job, its pods and its Service (cost attribution: activity=training), with
    ``extra`` (``kubernetes.pod_labels``) added; the selection labels always keep their values."""
    own = {
        "app.kubernetes.io/name": "driftloop",
        COMPONENT_LABEL: "training",
        "app.kubernetes.io/part-of": "driftloop",
        "app.kubernetes.io/managed-by": "driftloop",
        "driftloop.io/activity": "training",
        JOB_LABEL: name,
    }
    selection = {k: v for k, v in own.items() if k in SELECTION_LABELS}
    return {**own, **(extra or {}), **selection}


def validate_pod_labels(labels: Mapping[str, str]) -> None:
    """Refuse ``kubernetes.pod_labels`` that set a selection label or are not valid Kubernetes
    labels (the API server would refuse the Job only after the run started)."""
    reserved = sorted(set(labels) & SELECTION_LABELS)
    if reserved:
        raise InvalidInputError(
            f"kubernetes.pod_labels may not set {', '.join(reserved)}: training pods are "
            "selected by these labels"
        )
    for key, value in labels.items():
        prefix, _, label = key.rpartition("/")
        if (
            not isinstance(value, str)
            or not label
            or len(label) > 63
            or not _LABEL_NAME.match(label)
            or (prefix and (len(prefix) > 253 or not _LABEL_PREFIX.match(prefix)))
        ):
            raise InvalidInputError(f"kubernetes.pod_labels: {key!r} is not a valid label key")
        if len(value) > 63 or not _LABEL_NAME.match(value):
            raise InvalidInputError(
                f"kubernetes.pod_labels: value {value!r} of {key!r} is not a valid label value "
                "(at most 63 letters, digits, '-', '_', '.', starting and ending alphanumeric)"
            )


def service_name(name: str) -> str:
    return f"{name}-rdzv"


def master_addr(name: str) -> str:
    """DNS name of pod 0 through the headless Service (resolved in the Job's namespace)."""
    return f"{name}-0.{service_name(name)}"


def torchrun_args(
    *,
    nodes: int,
    gpus_per_node: int,
    master: str,
    port: int,
    rank: str = f"$({RANK_ENV})",
    module: str = DDP_MODULE,
    command_args: list[str] | None = None,
) -> list[str]:
    """torchrun arguments with static rendezvous: every node knows the world size, its own
    rank and the address of rank 0 (no etcd, no c10d store outside the job)."""
    return [
        f"--nnodes={nodes}",
        f"--nproc_per_node={max(gpus_per_node, 1)}",
        f"--node_rank={rank}",
        f"--master_addr={master}",
        f"--master_port={port}",
        "-m",
        module,
        *(command_args or []),
    ]


def _env(settings: Settings, nodes: int, gpus_per_node: int) -> list[V1EnvVar]:
    from kubernetes.client import V1EnvVar, V1EnvVarSource, V1ObjectFieldSelector

    plain = {
        "HOME": "/tmp",
        "DRIFTLOOP_ENVIRONMENT": settings.environment,
        "DRIFTLOOP_LOG_LEVEL": settings.log_level,
        "DRIFTLOOP_STATE_DIR": STATE_DIR,
        "DRIFTLOOP_MLFLOW__TRACKING_URI": settings.mlflow.uri,
        "MLFLOW_TRACKING_URI": settings.mlflow.uri,
        "DRIFTLOOP_MLFLOW__EXPERIMENT": settings.mlflow.experiment,
        "DRIFTLOOP_MLFLOW__REGISTERED_MODEL": settings.mlflow.registered_model,
        "DRIFTLOOP_PREFECT__API_URL": settings.prefect.url,
        "DRIFTLOOP_FEATURES__ONLINE_STORE": settings.features.online_store,
        # The whole training section as JSON: every rank trains with the caller's settings.
        "DRIFTLOOP_TRAINING": settings.training.model_dump_json(),
        "DRIFTLOOP_TRAINING__DEVICE": "cuda" if gpus_per_node > 0 else "cpu",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DVC_NO_ANALYTICS": "1",
        "ITERATIVE_DO_NOT_TRACK": "1",
        "PYTHONUNBUFFERED": "1",
    }
    # A Redis connection string may carry a password: it travels only through env_from_secrets.
    if "password" not in settings.features.redis_connection.lower():
        plain["DRIFTLOOP_FEATURES__REDIS_CONNECTION"] = settings.features.redis_connection
    rank = V1EnvVar(
        name=RANK_ENV,
        value_from=V1EnvVarSource(
            field_ref=V1ObjectFieldSelector(
                field_path=f"metadata.annotations['{INDEX_ANNOTATION}']"
            )
        ),
    )
    return [rank, *(V1EnvVar(name=k, value=v) for k, v in plain.items())]


def validate_request(
    name: str,
    nodes: int,
    gpus_per_node: int,
    command_args: list[str],
    *,
    host_network: bool = False,
) -> None:
    if not _NAME.match(name) or len(name) > MAX_NAME:
        raise InvalidInputError(
            f"training job name {name!r} must be a DNS label of at most {MAX_NAME} characters "
            "(lowercase letters, digits, '-')"
        )
    if nodes < 1:
        raise InvalidInputError(f"nodes must be >= 1, got {nodes}")
    if gpus_per_node < 0:
        raise InvalidInputError(f"gpus_per_node must be >= 0, got {gpus_per_node}")
    if any(not isinstance(a, str) for a in command_args):
        raise InvalidInputError("command_args must be strings")
    if host_network and nodes > 1:
        raise InvalidInputError(
            f"nodes={nodes} is refused with kubernetes.host_network=true: pods on the node's "
            f"network reach rank 0 at {LOOPBACK}, so a training run has one node only "
            "(use --nodes 1, or a cluster without the chart's hostNetwork test mode)"
        )


def build_training_job(
    settings: Settings,
    *,
    name: str,
    image: str,
    nodes: int,
    gpus_per_node: int,
    command_args: list[str],
    namespace: str,
    ttl_seconds: int | None = None,
) -> tuple[V1Job, V1Service]:
    """The Indexed Job and headless Service of one distributed training run.

    ``nodes`` pods (completions = parallelism = nodes) each run
    ``torchrun --nnodes N --nproc_per_node G --node_rank <pod index> --master_addr
    <name>-0.<name>-rdzv --master_port P -m driftloop.training.ddp <command_args>``.
    ``gpus_per_node=0`` trains on CPU with one process per pod. With
    ``kubernetes.host_network`` the one pod (``nodes`` must be 1) runs on the node's network
    with ``--master_addr=127.0.0.1 --node_rank=0``.
    """
    from kubernetes.client import (
        V1Capabilities,
        V1Container,
        V1ContainerPort,
        V1EmptyDirVolumeSource,
        V1EnvFromSource,
        V1Job,
        V1JobSpec,
        V1ObjectMeta,
        V1PersistentVolumeClaimVolumeSource,
        V1PodSecurityContext,
        V1PodSpec,
        V1PodTemplateSpec,
        V1ResourceRequirements,
        V1SeccompProfile,
        V1SecretEnvSource,
        V1SecurityContext,
        V1Service,
        V1ServicePort,
        V1ServiceSpec,
        V1Toleration,
        V1Volume,
        V1VolumeMount,
    )

    k8s = settings.kubernetes
    validate_request(name, nodes, gpus_per_node, command_args, host_network=k8s.host_network)
    validate_pod_labels(k8s.pod_labels)
    labels = labels_for(name, k8s.pod_labels)
    svc = service_name(name)
    ttl = k8s.ttl_seconds_after_finished if ttl_seconds is None else ttl_seconds

    limits = {"memory": k8s.memory}
    if gpus_per_node > 0:
        limits[k8s.gpu_resource] = str(gpus_per_node)
    state = (
        V1Volume(
            name="state",
            persistent_volume_claim=V1PersistentVolumeClaimVolumeSource(claim_name=k8s.state_claim),
        )
        if k8s.state_claim
        else V1Volume(name="state", empty_dir=V1EmptyDirVolumeSource())
    )
    container = V1Container(
        name="trainer",
        image=image,
        image_pull_policy=k8s.image_pull_policy,
        command=["torchrun"],
        args=torchrun_args(
            nodes=nodes,
            gpus_per_node=gpus_per_node,
            master=LOOPBACK if k8s.host_network else master_addr(name),
            port=k8s.master_port,
            # One node: rank 0 without the completion index (Indexed Jobs need Kubernetes 1.21+,
            # the test mode's cluster may be older).
            rank="0" if k8s.host_network else f"$({RANK_ENV})",
            command_args=command_args,
        ),
        env=_env(settings, nodes, gpus_per_node),
        env_from=[
            V1EnvFromSource(secret_ref=V1SecretEnvSource(name=secret))
            for secret in k8s.env_from_secrets
        ]
        or None,
        ports=[V1ContainerPort(name="rdzv", container_port=k8s.master_port, protocol="TCP")],
        resources=V1ResourceRequirements(
            requests={"cpu": k8s.cpu, "memory": k8s.memory}, limits=limits
        ),
        security_context=V1SecurityContext(
            run_as_non_root=True,
            read_only_root_filesystem=True,
            allow_privilege_escalation=False,
            capabilities=V1Capabilities(drop=["ALL"]),
            seccomp_profile=V1SeccompProfile(type="RuntimeDefault"),
        ),
        volume_mounts=[
            V1VolumeMount(name="tmp", mount_path="/tmp"),
            V1VolumeMount(name="state", mount_path=STATE_DIR),
            V1VolumeMount(name="dshm", mount_path="/dev/shm"),
        ],
    )
    pod = V1PodSpec(
        restart_policy="Never",
        # Pod i is "<name>-i.<svc>": torchrun's master address is pod 0's DNS name.
        subdomain=svc,
        # Test mode: on the node's network, like every pod of the chart (its podNetwork helper).
        host_network=True if k8s.host_network else None,
        dns_policy="ClusterFirstWithHostNet" if k8s.host_network else None,
        service_account_name=k8s.service_account,
        automount_service_account_token=False,
        security_context=V1PodSecurityContext(
            run_as_non_root=True,
            run_as_user=RUN_AS,
            run_as_group=RUN_AS,
            fs_group=RUN_AS,
            seccomp_profile=V1SeccompProfile(type="RuntimeDefault"),
        ),
        node_selector=dict(k8s.node_selector) or None,
        tolerations=[V1Toleration(**t) for t in k8s.tolerations] or None,
        containers=[container],
        volumes=[
            V1Volume(name="tmp", empty_dir=V1EmptyDirVolumeSource()),
            state,
            # NCCL and DataLoader workers need a /dev/shm larger than the runtime's 64 MiB.
            V1Volume(name="dshm", empty_dir=V1EmptyDirVolumeSource(medium="Memory")),
        ],
    )
    job = V1Job(
        api_version="batch/v1",
        kind="Job",
        metadata=V1ObjectMeta(name=name, namespace=namespace, labels=labels),
        spec=V1JobSpec(
            completion_mode="Indexed",
            completions=nodes,
            parallelism=nodes,
            backoff_limit=k8s.backoff_limit,
            ttl_seconds_after_finished=ttl,
            template=V1PodTemplateSpec(metadata=V1ObjectMeta(labels=labels), spec=pod),
        ),
    )
    service = V1Service(
        api_version="v1",
        kind="Service",
        metadata=V1ObjectMeta(name=svc, namespace=namespace, labels=labels),
        spec=V1ServiceSpec(
            cluster_ip="None",
            # Rank 0 must resolve before it is "ready": torchrun waits for all ranks.
            publish_not_ready_addresses=True,
            selector={"job-name": name},
            ports=[V1ServicePort(name="rdzv", port=k8s.master_port, target_port="rdzv")],
        ),
    )
    return job, service
