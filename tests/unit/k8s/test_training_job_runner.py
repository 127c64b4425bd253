"""run_training_job against fake Kubernetes APIs.

Mocked because no cluster can run in the test suite here (no kind/node image, and building the
1.20 cluster of scripts/k8s-local/README.md takes ~10 minutes). The fakes return the real
``kubernetes`` client model objects a cluster would send and record every call, so the tests
check what the runner sends, how it follows the Job, streams logs, cleans up and reports errors.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes.client import (
    V1Job,
    V1JobCondition,
    V1JobStatus,
    V1ObjectMeta,
    V1Pod,
    V1PodList,
    V1PodStatus,
)
from kubernetes.client.exceptions import ApiException

from driftloop.errors import ConflictError, PermissionDeniedError, TrainingError
from driftloop.k8s import KubeApis, run_training_job
from driftloop.settings import KubernetesSettings, Settings

INDEX = "batch.kubernetes.io/job-completion-index"


def job_status(condition: str | None = None, message: str = "") -> V1Job:
    conditions = (
        [V1JobCondition(type=condition, status="True", reason=condition, message=message)]
        if condition
        else None
    )
    return V1Job(metadata=V1ObjectMeta(name="t"), status=V1JobStatus(conditions=conditions))


def pod(rank: int, phase: str) -> V1Pod:
    return V1Pod(
        metadata=V1ObjectMeta(name=f"t-{rank}-abcde", annotations={INDEX: str(rank)}),
        status=V1PodStatus(phase=phase),
    )


class LogStream:
    def __init__(self, text: str) -> None:
        self.text = text

    def stream(self, size: int) -> Iterator[bytes]:
        data = self.text.encode()
        for i in range(0, len(data), 7):  # odd chunking: lines are split across chunks
            yield data[i : i + 7]


class FakeBatch:
    def __init__(self, statuses: list[V1Job], create_error: Exception | None = None) -> None:
        self.statuses, self.create_error = statuses, create_error
        self.created: list[V1Job] = []
        self.deleted: list[tuple[str, str, Any]] = []

    def create_namespaced_job(self, namespace: str, body: V1Job) -> V1Job:
        if self.create_error:
            raise self.create_error
        self.created.append(body)
        return V1Job(metadata=V1ObjectMeta(name=body.metadata.name, uid="uid-123"))

    def read_namespaced_job_status(self, name: str, namespace: str) -> V1Job:
        return self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]

    def delete_namespaced_job(self, name: str, namespace: str, body: Any = None) -> None:
        self.deleted.append((name, namespace, body))


class FakeCore:
    def __init__(self, pods: list[V1Pod], logs: dict[str, str]) -> None:
        self.pods, self.logs = pods, logs
        self.services: list[Any] = []
        self.deleted_services: list[tuple[str, str]] = []
        self.selectors: list[str] = []

    def create_namespaced_service(self, namespace: str, body: Any) -> Any:
        self.services.append(body)
        return body

    def list_namespaced_pod(self, namespace: str, label_selector: str = "") -> V1PodList:
        self.selectors.append(label_selector)
        return V1PodList(items=self.pods)

    def read_namespaced_pod_log(self, name: str, namespace: str, **kwargs: Any) -> Any:
        text = self.logs.get(name, "")
        if kwargs.get("follow"):
            return LogStream(text)
        return text

    def delete_namespaced_service(self, name: str, namespace: str) -> None:
        self.deleted_services.append((name, namespace))


@pytest.fixture
def settings(tmp_path: Any) -> Settings:
    return Settings(
        state_dir=tmp_path,
        kubernetes=KubernetesSettings(namespace="ml", image="img:1", poll_interval_s=0.01),
    )


def test_success_streams_every_rank_and_removes_the_service(settings: Settings) -> None:
    pods = [pod(0, "Running"), pod(1, "Running")]
    core = FakeCore(pods, {"t-0-abcde": "epoch 1\nepoch 2\ndone", "t-1-abcde": "worker ok\n"})
    batch = FakeBatch([job_status(), job_status(), job_status("Complete")])
    lines: list[str] = []
    result = run_training_job(
        settings,
        name="t",
        nodes=2,
        gpus_per_node=0,
        command_args=["--epochs", "2"],
        log_sink=lines.append,
        apis=KubeApis(core=core, batch=batch),
    )
    assert result.name == "t"
    assert result.namespace == "ml"
    assert result.pods == ["t-0-abcde", "t-1-abcde"]
    (job,) = batch.created
    assert job.spec.completions == 2
    assert job.spec.template.spec.containers[0].image == "img:1"
    (service,) = core.services
    owner = service.metadata.owner_references[0]
    assert (owner.kind, owner.name, owner.uid) == ("Job", "t", "uid-123")
    assert core.selectors[0] == "job-name=t"
    assert sorted(lines) == sorted(
        ["[rank 0] epoch 1", "[rank 0] epoch 2", "[rank 0] done", "[rank 1] worker ok"]
    )
    assert core.deleted_services == [("t-rdzv", "ml")]
    assert batch.deleted == []  # a finished Job goes by its TTL


def test_failure_raises_with_the_failed_rank_log_tail(settings: Settings) -> None:
    pods = [pod(0, "Failed"), pod(1, "Succeeded")]
    core = FakeCore(pods, {"t-0-abcde": "loading\nRuntimeError: NCCL timeout\n"})
    batch = FakeBatch([job_status("Failed", "Job has reached the specified backoff limit")])
    with pytest.raises(TrainingError) as err:
        run_training_job(
            settings,
            name="t",
            nodes=2,
            gpus_per_node=1,
            command_args=[],
            log_sink=lambda _: None,
            apis=KubeApis(core=core, batch=batch),
        )
    message = str(err.value)
    assert "training job ml/t failed" in message
    assert "backoff limit" in message
    assert "rank 0" in message
    assert "NCCL timeout" in message
    assert core.deleted_services == [("t-rdzv", "ml")]


def test_timeout_deletes_the_job(settings: Settings) -> None:
    core = FakeCore([pod(0, "Pending")], {})
    batch = FakeBatch([job_status()])
    with pytest.raises(TrainingError, match="did not finish within"):
        run_training_job(
            settings,
            name="t",
            nodes=1,
            gpus_per_node=0,
            command_args=[],
            timeout_s=0.05,
            apis=KubeApis(core=core, batch=batch),
        )
    assert [(name, ns) for name, ns, _ in batch.deleted] == [("t", "ml")]
    assert batch.deleted[0][2].propagation_policy == "Background"
    assert core.deleted_services == [("t-rdzv", "ml")]


@pytest.mark.parametrize(("status", "error"), [(409, ConflictError), (403, PermissionDeniedError)])
def test_api_refusals_become_clear_errors(
    settings: Settings, status: int, error: type[Exception]
) -> None:
    batch = FakeBatch([job_status()], create_error=ApiException(status=status, reason="Refused"))
    core = FakeCore([], {})
    with pytest.raises(error, match=r"create training job ml/t: Refused \(HTTP"):
        run_training_job(
            settings,
            name="t",
            nodes=1,
            gpus_per_node=0,
            command_args=[],
            apis=KubeApis(core=core, batch=batch),
        )
    assert core.services == []


def test_a_service_that_cannot_be_created_removes_the_job(settings: Settings) -> None:
    class NoServices(FakeCore):
        def create_namespaced_service(self, namespace: str, body: Any) -> Any:
            raise ApiException(status=403, reason="Forbidden")

    batch = FakeBatch([job_status()])
    with pytest.raises(PermissionDeniedError, match="rendezvous service"):
        run_training_job(
            settings,
            name="t",
            nodes=2,
            gpus_per_node=0,
            command_args=[],
            apis=KubeApis(core=NoServices([], {}), batch=batch),
        )
    assert [name for name, _, _ in batch.deleted] == ["t"]
