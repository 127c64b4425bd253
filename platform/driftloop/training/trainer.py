"""The trainer: device pick (CUDA with bf16 autocast, else CPU), seeded and deterministic on CPU,
early stopping, a checkpoint every epoch (model, optimizer, scheduler, RNG states, early-stopping
state) with resume, a guard against NaN or exploding loss, and optional DDP sharding.

Batches are drawn from a permutation seeded by ``seed`` and the epoch number, so a run resumed
from the checkpoint of epoch k sees exactly the batches and dropout masks an uninterrupted run
sees from epoch k + 1 on.
"""

from __future__ import annotations

import copy
import logging
import os
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from driftloop.cost import CPU_SECONDS, FIT_CPU_SECONDS, FIT_WALL_SECONDS, GPU_SECONDS, Meter, Usage
from driftloop.errors import TrainingError
from driftloop.inference.preprocessing import Preprocessor
from driftloop.schema import LABEL
from driftloop.settings import TrainingSettings
from driftloop.stats import roc_auc
from driftloop.training.model import ModelConfig, TabularNet

logger = logging.getLogger(__name__)

CHECKPOINT_FILE = "last.pt"


@dataclass
class TrainParams:
    """Hyperparameters of one training run (defaults from ``settings.training``)."""

    epochs: int = 8
    batch_size: int = 1024
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    hidden_sizes: list[int] = field(default_factory=lambda: [128, 64])
    embedding_dim: int = 8
    dropout: float = 0.1
    patience: int = 2
    seed: int = 13
    max_loss: float = 1e3
    device: str = "auto"

    @classmethod
    def from_settings(cls, training: TrainingSettings, **overrides: Any) -> TrainParams:
        names = {f.name for f in fields(cls)}
        values = {k: getattr(training, k) for k in names if hasattr(training, k)}
        unknown = set(overrides) - names
        if unknown:
            raise TrainingError(f"unknown training parameters {sorted(unknown)}")
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def model_config(self, pre: Preprocessor) -> ModelConfig:
        return ModelConfig(
            cardinalities=pre.cardinalities,
            n_numeric=pre.n_numeric,
            embedding_dim=self.embedding_dim,
            hidden_sizes=list(self.hidden_sizes),
            dropout=self.dropout,
        )


@dataclass
class EpochStats:
    epoch: int
    train_loss: float
    val_loss: float
    val_auc: float
    samples_per_s: float
    seconds: float
    learning_rate: float


@dataclass
class FitResult:
    model: TabularNet
    preprocessor: Preprocessor
    history: list[EpochStats]
    best_epoch: int
    device: str
    samples_per_s: float
    resumed_from: int | None = None
    stopped_early: bool = False
    #: CPU seconds of every rank, wall seconds, GPU seconds (wall x CUDA devices) of this fit
    usage: Usage = field(default_factory=lambda: Usage(0.0, 0.0))

    def cost_metrics(self) -> dict[str, float]:
        """The fit's cost as MLflow metrics (``cost.cpu_seconds`` starts as the fit's; the
        evaluate step adds its own)."""
        return {
            CPU_SECONDS: self.usage.cpu_seconds,
            FIT_CPU_SECONDS: self.usage.cpu_seconds,
            FIT_WALL_SECONDS: self.usage.wall_seconds,
            GPU_SECONDS: self.usage.gpu_seconds,
        }


@dataclass(frozen=True)
class DistContext:
    """Rank and world of a DDP process group (already initialised)."""

    rank: int
    world_size: int
    local_rank: int = 0


EpochCallback = Callable[[EpochStats], None]


def pick_device(preference: str = "auto") -> torch.device:
    """cuda when asked or available (auto), else cpu; cuda asked but absent is an error."""
    if preference == "cuda" and not torch.cuda.is_available():
        raise TrainingError("device 'cuda' requested but no CUDA device is available")
    if preference in ("auto", "cuda") and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def configure_threads(processes: int = 1) -> None:
    """Share the cores among the processes of this host (cap 8 threads each)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    torch.set_num_threads(max(1, min(8, (cores or 1) // max(processes, 1))))


def labels_of(df: pd.DataFrame) -> np.ndarray:
    if LABEL not in df.columns:
        raise TrainingError(f"training frame lacks the label column {LABEL!r}")
    y = pd.to_numeric(df[LABEL], errors="coerce")
    if y.isna().any():
        raise TrainingError(f"{int(y.isna().sum())} rows have no label {LABEL!r}")
    labels: np.ndarray = y.to_numpy(dtype=np.float32)
    return labels


def _rng_state() -> dict[str, Any]:
    """Every generator's state in types ``torch.load(weights_only=True)`` accepts (tensors,
    numbers, strings, tuples): numpy's key array travels as an int64 tensor."""
    name, keys, pos, has_gauss, gauss = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "name": str(name),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "gauss": float(gauss),
        },
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    keys = n["keys"].numpy().astype(np.uint32)
    np.random.set_state((n["name"], keys, n["pos"], n["has_gauss"], n["gauss"]))
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _save_atomic(obj: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def fit(
    train_df: pd.DataFrame,
    val_df: pd.DataFrame,
    params: TrainParams,
    checkpoint_dir: Path | None = None,
    resume: bool = False,
    on_epoch: EpochCallback | None = None,
    dist: DistContext | None = None,
) -> FitResult:
    """Train a :class:`TabularNet` on ``train_df``, early-stopping on ``val_df``'s loss."""
    if len(train_df) == 0:
        raise TrainingError("the training frame has no rows")
    if len(val_df) == 0:
        raise TrainingError("the validation frame has no rows")
    configure_threads(dist.world_size if dist is not None else 1)
    seed_everything(params.seed)
    device = pick_device(params.device)
    meter = Meter(gpus=1 if device.type == "cuda" else 0).start()
    if dist is not None and device.type == "cuda":
        device = torch.device("cuda", dist.local_rank)
        torch.cuda.set_device(device)
    is_main = dist is None or dist.rank == 0

    pre = Preprocessor.fit(train_df)
    codes, numeric = (torch.from_numpy(a).to(device) for a in pre.transform(train_df))
    y = torch.from_numpy(labels_of(train_df)).to(device)
    v_codes, v_numeric = (torch.from_numpy(a).to(device) for a in pre.transform(val_df))
    v_y_np = labels_of(val_df)
    v_y = torch.from_numpy(v_y_np).to(device)

    net = TabularNet(params.model_config(pre)).to(device)
    model: nn.Module = net
    if dist is not None:
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(
            net, device_ids=[device.index] if device.type == "cuda" else None
        )
    optimizer = torch.optim.AdamW(
        net.parameters(), lr=params.learning_rate, weight_decay=params.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=params.epochs)
    loss_fn = nn.BCEWithLogitsLoss()
    use_bf16 = device.type == "cuda"

    history: list[EpochStats] = []
    best_val, best_epoch, bad_epochs = float("inf"), 0, 0
    best_state: dict[str, torch.Tensor] = copy.deepcopy(net.state_dict())
    start_epoch, resumed_from, finished = 1, None, False
    ckpt_path = checkpoint_dir / CHECKPOINT_FILE if checkpoint_dir else None
    if resume and ckpt_path is not None and ckpt_path.exists():
        # weights_only: a checkpoint is data (tensors, numbers, strings), never code
        ckpt = torch.load(ckpt_path, map_location=device, weights_only=True)
        if ckpt["params"] != params.to_dict():
            raise TrainingError(
                f"checkpoint {ckpt_path} was written with other parameters: resume with the "
                "same parameters or train without --resume"
            )
        net.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        _set_rng_state(ckpt["rng"])
        best_state, best_val = ckpt["best_state"], ckpt["best_val"]
        best_epoch, bad_epochs = ckpt["best_epoch"], ckpt["bad_epochs"]
        history = [EpochStats(**h) for h in ckpt["history"]]
        start_epoch, finished = ckpt["epoch"] + 1, ckpt["finished"]
        resumed_from = ckpt["epoch"]
        logger.info("resumed from checkpoint %s after epoch %d", ckpt_path, ckpt["epoch"])

    n = len(y)
    world = dist.world_size if dist else 1
    rank = dist.rank if dist else 0
    per_rank = n // world
    if per_rank == 0:
        raise TrainingError(f"{n} training rows cannot be shared by {world} processes")
    epoch = start_epoch
    while not finished and epoch <= params.epochs:
        model.train()
        started = time.perf_counter()
        gen = torch.Generator().manual_seed(params.seed * 1_000_003 + epoch)
        perm = torch.randperm(n, generator=gen)[rank::world][:per_rank].to(device)
        total, seen = torch.zeros((), device=device), 0
        for step, lo in enumerate(range(0, per_rank, params.batch_size)):
            idx = perm[lo : lo + params.batch_size]
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                logits = model(codes[idx], numeric[idx])
            loss = loss_fn(logits.float(), y[idx])
            value = float(loss.detach())
            if not np.isfinite(value) or value > params.max_loss:
                raise TrainingError(
                    f"training loss is {value:.4g} at epoch {epoch} step {step} (limit "
                    f"{params.max_loss:g}): diverged; lower the learning rate or check the data"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach() * len(idx)
            seen += len(idx)
        scheduler.step()
        seconds = time.perf_counter() - started
        val_loss, val_p = _evaluate(net, v_codes, v_numeric, v_y, loss_fn, use_bf16)
        stats = EpochStats(
            epoch=epoch,
            train_loss=float(total) / max(seen, 1),
            val_loss=val_loss,
            val_auc=roc_auc(v_y_np, val_p),
            samples_per_s=seen * world / seconds if seconds > 0 else float("nan"),
            seconds=seconds,
            learning_rate=float(optimizer.param_groups[0]["lr"]),
        )
        history.append(stats)
        if val_loss < best_val - 1e-6:
            best_val, best_epoch, bad_epochs = val_loss, epoch, 0
            best_state = copy.deepcopy(net.state_dict())
        else:
            bad_epochs += 1
        finished = bad_epochs >= params.patience or epoch == params.epochs
        if ckpt_path is not None and is_main:
            _save_atomic(
                {
                    "epoch": epoch,
                    "finished": finished,
                    "params": params.to_dict(),
                    "model": net.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "rng": _rng_state(),
                    "best_state": best_state,
                    "best_val": best_val,
                    "best_epoch": best_epoch,
                    "bad_epochs": bad_epochs,
                    "history": [asdict(h) for h in history],
                },
                ckpt_path,
            )
        logger.info(
            "epoch %d: train_loss %.4f val_loss %.4f val_auc %.4f (%.0f samples/s)",
            epoch,
            stats.train_loss,
            stats.val_loss,
            stats.val_auc,
            stats.samples_per_s,
        )
        if on_epoch is not None:
            on_epoch(stats)
        epoch += 1
    if not history:
        raise TrainingError("no epoch was trained")
    net.load_state_dict(best_state)
    net.eval()
    usage = _usage(meter, device, dist)
    speeds = [h.samples_per_s for h in history if np.isfinite(h.samples_per_s)]
    return FitResult(
        model=net,
        preprocessor=pre,
        history=history,
        best_epoch=best_epoch,
        device=str(device),
        samples_per_s=float(np.mean(speeds)) if speeds else float("nan"),
        resumed_from=resumed_from,
        stopped_early=len(history) < params.epochs,
        usage=usage,
    )


def _usage(meter: Meter, device: torch.device, dist: DistContext | None) -> Usage:
    """The fit's usage; under DDP the CPU and GPU seconds of every rank summed (a collective:
    every rank calls it at the same point), the wall seconds of this rank."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)  # queued kernels belong to this fit's GPU time
    usage = meter.stop()
    if dist is None:
        return usage
    import torch.distributed as torch_dist  # only DDP runs need the collective

    both = torch.tensor([usage.cpu_seconds, usage.gpu_seconds], dtype=torch.float64, device=device)
    torch_dist.all_reduce(both)
    cpu, gpu = (float(v) for v in both.cpu())
    return Usage(cpu_seconds=cpu, wall_seconds=usage.wall_seconds, gpu_seconds=gpu)


def _evaluate(
    net: TabularNet,
    codes: torch.Tensor,
    numeric: torch.Tensor,
    y: torch.Tensor,
    loss_fn: nn.Module,
    use_bf16: bool,
    batch: int = 65_536,
) -> tuple[float, np.ndarray]:
    net.eval()
    outs = []
    with torch.inference_mode():
        for lo in range(0, len(y), batch):
            with torch.autocast(codes.device.type, dtype=torch.bfloat16, enabled=use_bf16):
                outs.append(net(codes[lo : lo + batch], numeric[lo : lo + batch]).float())
        logits = torch.cat(outs)
        loss = float(loss_fn(logits, y))
    return loss, torch.sigmoid(logits).cpu().numpy().astype(np.float64)
