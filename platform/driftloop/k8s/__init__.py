"""Distributed training on Kubernetes: an Indexed Job of ``torchrun`` pods with a headless
rendezvous Service (:func:`build_training_job`), created and followed to completion by
:func:`run_training_job`. The ``kubernetes`` client is imported lazily."""

from __future__ import annotations

from driftloop.k8s.job import DDP_MODULE, build_training_job, master_addr, torchrun_args
from driftloop.k8s.runner import KubeApis, TrainingJobResult, connect, run_training_job

__all__ = [
    "DDP_MODULE",
    "KubeApis",
    "TrainingJobResult",
    "build_training_job",
    "connect",
    "master_addr",
    "run_training_job",
    "torchrun_args",
]
