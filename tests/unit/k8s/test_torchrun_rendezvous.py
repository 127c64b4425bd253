"""The torchrun arguments the Job builder emits form a working static rendezvous: two "nodes"
(two local torchrun processes, node_rank 0 and 1, master 127.0.0.1) run a gloo all_reduce."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from driftloop.k8s import build_training_job
from driftloop.settings import KubernetesSettings, Settings

HERE = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_two_nodes_rendezvous_and_all_reduce_on_cpu(tmp_path: Path) -> None:
    port = free_port()
    settings = Settings(state_dir=tmp_path, kubernetes=KubernetesSettings(master_port=port))
    job, _ = build_training_job(
        settings,
        name="ddp-check",
        image="unused:0",
        nodes=2,
        gpus_per_node=0,
        command_args=[],
        namespace="ml",
    )
    container = job.spec.template.spec.containers[0]
    assert container.command == ["torchrun"]
    torchrun = Path(sys.executable).parent / "torchrun"
    procs = []
    for rank in (0, 1):
        args = []
        for arg in container.args:
            # What Kubernetes does in the pod: $(NODE_RANK) <- the completion index; and what
            # DNS does: pod 0's name -> its address (here: this machine).
            arg = arg.replace("$(NODE_RANK)", str(rank))
            arg = arg.replace("ddp-check-0.ddp-check-rdzv", "127.0.0.1")
            args.append(arg)
        # Same shape, the tiny check script instead of `-m driftloop.training.ddp`.
        module_at = args.index("-m")
        args = [*args[:module_at], str(HERE / "ddp_allreduce_check.py")]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo"}
        procs.append(
            subprocess.Popen(
                [str(torchrun), *args],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                env=env,
            )
        )
    outputs = []
    try:
        for proc in procs:
            out, _ = proc.communicate(timeout=120)
            outputs.append(out)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert [p.returncode for p in procs] == [0, 0], "\n".join(outputs)
    joined = "\n".join(outputs)
    assert "rank=0 world=2 sum=3.0 ok=True" in joined
    assert "rank=1 world=2 sum=3.0 ok=True" in joined
