"""Run a distributed training Job on Kubernetes: create the Job and its rendezvous Service,
stream every rank's log, wait for completion, clean up, and turn every failure into a
DriftloopError with a readable message.

This is the function behind ``driftloop train --on kubernetes --nodes N --gpus-per-node G``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from driftloop.errors import (
    ConflictError,
    DriftloopError,
    NotFoundError,
    PermissionDeniedError,
    ServiceUnavailableError,
    TrainingError,
)
from driftloop.k8s.job import INDEX_ANNOTATION, build_training_job, service_name
from driftloop.settings import Settings

logger = logging.getLogger(__name__)
LogSink = Callable[[str], None]
TAIL_LINES = 20


@dataclass
class KubeApis:
    """The two API groups the runner uses (``kubernetes.client.CoreV1Api`` / ``BatchV1Api``)."""

    core: Any
    batch: Any


@dataclass(frozen=True)
class TrainingJobResult:
    name: str
    namespace: str
    nodes: int
    gpus_per_node: int
    duration_s: float
    pods: list[str] = field(default_factory=list)


def connect(settings: Settings) -> KubeApis:
    """API clients from the in-cluster service account, else the kubeconfig (its context from
    ``settings.kubernetes.context``)."""
    from kubernetes import client, config

    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]  # untyped client
    except config.ConfigException:
        try:
            config.load_kube_config(  # type: ignore[no-untyped-call]  # untyped client
                context=settings.kubernetes.context
            )
        except (config.ConfigException, OSError) as exc:
            raise ServiceUnavailableError(
                f"no Kubernetes cluster configured (in-cluster or kubeconfig): {exc}"
            ) from exc
    return KubeApis(core=client.CoreV1Api(), batch=client.BatchV1Api())


def _api_error(exc: Exception, doing: str) -> DriftloopError:
    status = getattr(exc, "status", None)
    reason = getattr(exc, "reason", None) or type(exc).__name__
    message = f"{doing}: {reason}" + (f" (HTTP {status})" if status else "")
    if status == 409:
        return ConflictError(message)
    if status in (401, 403):
        return PermissionDeniedError(message)
    if status == 404:
        return NotFoundError(message)
    return ServiceUnavailableError(message)


def _call(doing: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """One API call; API and connection errors become DriftloopErrors."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    try:
        return fn(*args, **kwargs)
    except (ApiException, HTTPError, OSError) as exc:
        raise _api_error(exc, doing) from exc


class _LogFollower:
    """Streams one pod's log in a thread into ``sink``, keeping the last lines."""

    def __init__(self, apis: KubeApis, pod: str, namespace: str, rank: str, sink: LogSink) -> None:
        self.pod, self.rank = pod, rank
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)
        self._apis, self._namespace, self._sink = apis, namespace, sink
        self.thread = threading.Thread(target=self._run, name=f"logs-{pod}", daemon=True)
        self.thread.start()

    def _emit(self, line: str) -> None:
        self.tail.append(line)
        self._sink(f"[rank {self.rank}] {line}")

    def _run(self) -> None:
        try:
            resp = self._apis.core.read_namespaced_pod_log(
                name=self.pod, namespace=self._namespace, follow=True, _preload_content=False
            )
            buffer = ""
            for chunk in resp.stream(4096):
                buffer += chunk.decode("utf-8", "replace") if isinstance(chunk, bytes) else chunk
                *lines, buffer = buffer.split("\n")
                for line in lines:
                    self._emit(line)
            if buffer:
                self._emit(buffer)
        except Exception as exc:  # a log stream that breaks must not fail the training run
            logger.warning("log stream of pod %s ended: %s", self.pod, exc)


def _rank(pod: Any) -> str:
    annotations = (pod.metadata.annotations or {}) if pod.metadata else {}
    return str(annotations.get(INDEX_ANNOTATION, "?"))


def _condition(job: Any, kind: str) -> Any | None:
    for cond in (job.status.conditions or []) if job.status else []:
        if cond.type == kind and cond.status == "True":
            return cond
    return None


def _failure_tail(
    apis: KubeApis, namespace: str, pods: list[Any], followers: dict[str, Any]
) -> str:
    parts = []
    for pod in pods:
        if not pod.status or pod.status.phase != "Failed":
            continue
        name = pod.metadata.name
        if name in followers and followers[name].tail:
            lines = list(followers[name].tail)
        else:
            try:
                text = apis.core.read_namespaced_pod_log(
                    name=name, namespace=namespace, tail_lines=TAIL_LINES
                )
                lines = str(text).splitlines()
            except Exception:
                lines = []
        if lines:
            parts.append(f"rank {_rank(pod)} ({name}) last lines: " + " | ".join(lines[-5:]))
    return "; ".join(parts)


def run_training_job(
    settings: Settings,
    *,
    name: str,
    nodes: int,
    gpus_per_node: int,
    command_args: list[str],
    image: str | None = None,
    namespace: str | None = None,
    ttl_seconds: int | None = None,
    timeout_s: float | None = None,
    follow_logs: bool = True,
    log_sink: LogSink | None = None,
    apis: KubeApis | None = None,
) -> TrainingJobResult:
    """Create the training Job and its headless Service, follow the Job to completion
    (streaming each rank's log to ``log_sink``, default: this module's logger), then delete the
    Service; the finished Job is removed by its TTL. Raises ConflictError when a Job of that
    name exists, TrainingError when the Job fails or times out (then it is deleted at once),
    PermissionDeniedError / ServiceUnavailableError for API problems.

    Image, namespace, timeout and TTL default to ``settings.kubernetes``.
    """
    from kubernetes.client import V1DeleteOptions, V1OwnerReference

    k8s = settings.kubernetes
    namespace = namespace or k8s.namespace
    timeout = timeout_s or k8s.timeout_s
    sink: LogSink = log_sink or (lambda line: logger.info("%s", line))
    job, service = build_training_job(
        settings,
        name=name,
        image=image or k8s.image,
        nodes=nodes,
        gpus_per_node=gpus_per_node,
        command_args=command_args,
        namespace=namespace,
        ttl_seconds=ttl_seconds,
    )
    apis = apis or connect(settings)
    where = f"training job {namespace}/{name}"
    started = time.monotonic()
    created = _call(f"create {where}", apis.batch.create_namespaced_job, namespace, job)
    logger.info("created %s: %d node(s) x %d GPU(s)", where, nodes, gpus_per_node)
    # Owned by the Job: if this process dies, the Job's TTL also garbage-collects the Service.
    assert service.metadata is not None
    service.metadata.owner_references = [
        V1OwnerReference(
            api_version="batch/v1",
            kind="Job",
            name=name,
            uid=created.metadata.uid,
            block_owner_deletion=False,
            controller=False,
        )
    ]
    delete_job = False
    followers: dict[str, _LogFollower] = {}
    try:
        try:
            _call(
                f"create rendezvous service of {where}",
                apis.core.create_namespaced_service,
                namespace,
                service,
            )
        except DriftloopError:
            delete_job = True
            raise
        while True:
            current = _call(f"read {where}", apis.batch.read_namespaced_job_status, name, namespace)
            pods = _call(
                f"list pods of {where}",
                apis.core.list_namespaced_pod,
                namespace,
                label_selector=f"job-name={name}",
            ).items
            if follow_logs:
                for pod in pods:
                    phase = pod.status.phase if pod.status else None
                    if pod.metadata.name not in followers and phase in (
                        "Running",
                        "Succeeded",
                        "Failed",
                    ):
                        followers[pod.metadata.name] = _LogFollower(
                            apis, pod.metadata.name, namespace, _rank(pod), sink
                        )
            if _condition(current, "Complete"):
                break
            failed = _condition(current, "Failed")
            if failed:
                for follower in followers.values():
                    follower.thread.join(timeout=5)
                tail = _failure_tail(apis, namespace, pods, followers)
                raise TrainingError(
                    f"{where} failed: {failed.reason or 'Failed'}: {failed.message or ''}"
                    + (f"; {tail}" if tail else "")
                )
            if time.monotonic() - started > timeout:
                delete_job = True
                raise TrainingError(f"{where} did not finish within {timeout:.0f} s; deleted it")
            time.sleep(k8s.poll_interval_s)
        for follower in followers.values():
            follower.thread.join(timeout=10)
        duration = time.monotonic() - started
        logger.info("%s completed in %.0f s", where, duration)
        return TrainingJobResult(
            name=name,
            namespace=namespace,
            nodes=nodes,
            gpus_per_node=gpus_per_node,
            duration_s=duration,
            pods=sorted(p.metadata.name for p in pods),
        )
    except KeyboardInterrupt:
        delete_job = True
        raise
    finally:
        _cleanup(apis, name, namespace, service_name(name), delete_job, V1DeleteOptions)


def _cleanup(
    apis: KubeApis, name: str, namespace: str, service: str, delete_job: bool, options: type
) -> None:
    from kubernetes.client.exceptions import ApiException

    try:
        apis.core.delete_namespaced_service(service, namespace)
    except ApiException as exc:
        if exc.status != 404:
            logger.warning("could not delete service %s/%s: %s", namespace, service, exc.reason)
    except Exception as exc:
        logger.warning("could not delete service %s/%s: %s", namespace, service, exc)
    if delete_job:
        try:
            apis.batch.delete_namespaced_job(
                name, namespace, body=options(propagation_policy="Background")
            )
            logger.info("deleted training job %s/%s", namespace, name)
        except Exception as exc:
            logger.warning("could not delete training job %s/%s: %s", namespace, name, exc)
