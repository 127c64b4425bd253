"""Distributed data-parallel training, started by torchrun (gloo on CPU, NCCL on GPU)::

    torchrun --nproc_per_node 2 -m driftloop.training.ddp --from 2013-01 --to 2013-03
    torchrun --nproc_per_node 2 -m driftloop.training.ddp --frame train.parquet --out DIR

With ``--from/--to`` every rank builds the same Feast training frame and trains its shard of
each epoch; rank 0 also tracks the run in MLflow, evaluates, gates and registers (the same
pipeline as ``driftloop train``). With ``--frame`` (a parquet training frame) nothing is
tracked: rank 0 saves the model bundle to ``--out``. ``--out`` also receives every rank's final
weights (``rank{N}.pt``), which must be identical across ranks.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import torch.distributed as torch_dist

from driftloop.logs import configure_logging
from driftloop.schema import EVENT_TIMESTAMP
from driftloop.settings import get_settings
from driftloop.training.bundle import ModelBundle
from driftloop.training.pipeline import evaluate as evaluate_step
from driftloop.training.pipeline import fit_and_log, prepare, register
from driftloop.training.trainer import DistContext, TrainParams, fit

logger = logging.getLogger("driftloop.training.ddp")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m driftloop.training.ddp", description=__doc__)
    p.add_argument("--from", dest="start", help="first training month (Feast frame)")
    p.add_argument("--to", dest="end", help="last training month")
    p.add_argument("--frame", type=Path, help="parquet training frame instead of Feast")
    p.add_argument("--out", type=Path, help="folder for rank weights and the model bundle")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--learning-rate", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--device", choices=["auto", "cpu", "cuda"])
    p.add_argument("--use-best-params", action="store_true")
    return p


def init_process_group() -> DistContext:
    """Join the torchrun group: NCCL when CUDA is present, else gloo."""
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if not torch_dist.is_initialized():
        torch_dist.init_process_group(backend=backend)
    return DistContext(
        rank=torch_dist.get_rank(),
        world_size=torch_dist.get_world_size(),
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
    )


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    configure_logging("INFO", "%(asctime)s rank%(process)d %(message)s")
    if (args.frame is None) == (args.start is None):
        raise SystemExit("give either --frame or --from/--to")
    ctx = init_process_group()
    settings = get_settings()
    overrides = {
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "seed": args.seed,
        "device": args.device,
    }
    try:
        if args.frame is not None:
            _train_frame(args, ctx, TrainParams.from_settings(settings.training, **overrides))
        else:
            _train_window(args, ctx, overrides)
    finally:
        torch_dist.destroy_process_group()
    return 0


def _save_rank(out: Path | None, ctx: DistContext, model: torch.nn.Module) -> None:
    if out is None:
        return
    out.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.cpu() for k, v in model.state_dict().items()}, out / f"rank{ctx.rank}.pt")


def _train_frame(args: argparse.Namespace, ctx: DistContext, params: TrainParams) -> None:
    frame = pd.read_parquet(args.frame)
    if EVENT_TIMESTAMP in frame.columns:
        frame = frame.sort_values(EVENT_TIMESTAMP, kind="mergesort")
    cut = int(len(frame) * (1 - get_settings().training.validation_share))
    result = fit(frame.iloc[:cut], frame.iloc[cut:], params, dist=ctx)
    _save_rank(args.out, ctx, result.model)
    if ctx.rank == 0 and args.out is not None:
        bundle = ModelBundle(result.model.to("cpu"), result.preprocessor)
        bundle.calibrate(frame.iloc[cut:]).save(args.out / "model")
        (args.out / "history.json").write_text(
            json.dumps([vars(h) for h in result.history], indent=2)
        )


def _train_window(args: argparse.Namespace, ctx: DistContext, overrides: dict[str, Any]) -> None:
    settings = get_settings()
    job = prepare(args.start, args.end, settings, overrides, args.use_best_params or None)
    if ctx.rank == 0:
        fitted = fit_and_log(job, settings, dist=ctx)
        _save_rank(args.out, ctx, fitted.bundle.net)
        result = register(job, fitted, evaluate_step(job, fitted, settings), settings)
        logger.info("registered version %s: %s (%s)", result.version, result.gate, result.reason)
    else:
        fit_rows, val_rows = job.data.split_validation(settings.training.validation_share)
        out = fit(fit_rows, val_rows, job.params, dist=ctx)
        _save_rank(args.out, ctx, out.model)


if __name__ == "__main__":
    raise SystemExit(main())
