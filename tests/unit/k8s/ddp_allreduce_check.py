"""Started by torchrun in test_torchrun_rendezvous.py: joins the process group through the
static rendezvous torchrun set up (MASTER_ADDR/PORT, RANK, WORLD_SIZE) and checks a gloo
all_reduce across the nodes."""

from __future__ import annotations

import os
import sys

import torch
import torch.distributed as dist


def main() -> int:
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    value = torch.tensor([float(rank + 1)])
    dist.all_reduce(value, op=dist.ReduceOp.SUM)
    expected = world * (world + 1) / 2
    ok = value.item() == expected and int(os.environ["GROUP_RANK"]) == rank
    sys.stdout.write(f"rank={rank} world={world} sum={value.item()} ok={ok}\n")
    dist.destroy_process_group()
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
