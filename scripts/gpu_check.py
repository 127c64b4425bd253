"""GPU check of the training stack (run on a machine with an NVIDIA GPU; <= 2 minutes).

    python scripts/gpu_check.py

Trains the real TabularNet for a few hundred steps on synthetic data with device cuda and bf16
autocast, asserts the parameters live on cuda and autocast produces bf16, prints samples/s on
GPU vs CPU, then runs a DDP step over NCCL (2 processes when >= 2 GPUs, else world size 1) via
torch.multiprocessing and checks that every rank ends with identical weights. Exits non-zero on
any failure.
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "platform"))

from driftloop.training.model import ModelConfig, TabularNet

ROWS, BATCH, STEPS = 200_000, 4096, 300
CONFIG = ModelConfig(cardinalities=[17, 4, 105, 6], n_numeric=32)


def _data(device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    codes = torch.stack(
        [torch.randint(0, c, (ROWS,), generator=g) for c in CONFIG.cardinalities], dim=1
    )
    numeric = torch.randn(ROWS, CONFIG.n_numeric, generator=g)
    y = (numeric[:, 0] + 0.5 * (codes[:, 0] == 3).float() > 0.3).float()
    return codes.to(device), numeric.to(device), y.to(device)


def train_steps(device: torch.device, steps: int) -> float:
    """Train `steps` steps; returns samples/s. Asserts placement and autocast dtype on cuda."""
    torch.manual_seed(0)
    net = TabularNet(CONFIG).to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3)
    codes, numeric, y = _data(device)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    use_bf16 = device.type == "cuda"
    if use_bf16:
        assert all(p.is_cuda for p in net.parameters()), "parameters are not on cuda"
    first = last = None
    for step in range(steps + 10):
        if step == 10:  # warm-up excluded from timing
            if device.type == "cuda":
                torch.cuda.synchronize()
            started = time.perf_counter()
        idx = torch.randint(0, ROWS, (BATCH,), device=device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
            logits = net(codes[idx], numeric[idx])
            if use_bf16 and step == 0:
                assert logits.dtype == torch.bfloat16, f"autocast gave {logits.dtype}"
        loss = loss_fn(logits.float(), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        value = float(loss)
        assert value == value, "loss is NaN"
        first = value if first is None else first
        last = value
    if device.type == "cuda":
        torch.cuda.synchronize()
    rate = steps * BATCH / (time.perf_counter() - started)
    assert last is not None, "no step ran"
    assert first is not None, "no step ran"
    assert last < first, "loss did not decrease"
    return rate


def _ddp_worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("nccl", rank=rank, world_size=world)
    torch.cuda.set_device(rank)
    device = torch.device("cuda", rank)
    torch.manual_seed(0)
    net = TabularNet(CONFIG).to(device)
    model = torch.nn.parallel.DistributedDataParallel(net, device_ids=[rank])
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3)
    codes, numeric, y = _data(device)
    g = torch.Generator().manual_seed(100 + rank)  # each rank its own batches
    for _ in range(20):
        idx = torch.randint(0, ROWS, (BATCH,), generator=g).to(device)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = model(codes[idx], numeric[idx])
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    torch.save({k: v.cpu() for k, v in net.state_dict().items()}, f"{out}/rank{rank}.pt")
    dist.barrier()
    dist.destroy_process_group()


def ddp_check() -> int:
    world = min(2, torch.cuda.device_count())
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as out:
        mp.spawn(_ddp_worker, args=(world, port, out), nprocs=world, join=True)
        states = [torch.load(f"{out}/rank{r}.pt", weights_only=True) for r in range(world)]
    for other in states[1:]:
        assert all(torch.equal(states[0][k], other[k]) for k in states[0]), "ranks differ"
    return world


def main() -> int:
    if not torch.cuda.is_available():
        print("FAIL: no CUDA device visible to torch", torch.__version__)
        return 1
    print(
        f"torch {torch.__version__}, CUDA {torch.version.cuda}, "
        f"{torch.cuda.device_count()} GPU(s): {torch.cuda.get_device_name(0)}"
    )
    gpu = train_steps(torch.device("cuda"), STEPS)
    cpu = train_steps(torch.device("cpu"), 30)
    print(f"samples/s: GPU bf16 {gpu:,.0f} vs CPU {cpu:,.0f} ({gpu / cpu:.1f}x)")
    world = ddp_check()
    print(f"DDP over NCCL, world size {world}: identical weights on every rank")
    print("OK")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except AssertionError as exc:
        print(f"FAIL: {exc}")
        sys.exit(1)
