"""Batch scoring benchmark: rows per second of ``driftloop batch-score`` on a month, against the
model's bare forward pass on the same rows, in one command.

Measured on the same month and model, each the median of ``--repeats`` runs:

1. ``batch_score`` end to end (:func:`driftloop.loop.batch.batch_score`: read the partition,
   point-in-time features from the Feast offline store, score, write the parquet; model load
   excluded from nothing: it is part of a batch run) and its stages;
2. scoring alone through serving's model handle (:func:`driftloop.loop.batch.score_frame`:
   preprocessing + torch + calibration, ``settings.batch.chunk_rows`` rows per call);
3. the bare forward pass: the torch net on the already preprocessed rows
   (``TabularNet.predict_proba``, same chunks): the baseline, the most any scoring path can do.

(2) and (3) run in turn, ``5 x --repeats`` times each, so load from other processes on a shared
machine falls on both alike.

The MLflow run of each repetition is not logged (``log_to_mlflow=False``): its cost is a few
requests, not a property of the rows.

Usage::

    python benchmarks/batch.py --bootstrap           # own MLflow, 2013-01..02, a trained champion
    python benchmarks/batch.py --month 2013-05       # the running platform's champion
    python benchmarks/batch.py --bootstrap --json out.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "platform"), str(ROOT)]

from driftloop.embedded.services import (  # noqa: E402
    free_port,
    mlflow_service,
    start_service,
    stop_service,
)
from driftloop.logs import configure_logging  # noqa: E402
from driftloop.schema import MODEL_INPUT_COLUMNS  # noqa: E402
from driftloop.settings import QUIET_ENV, Settings, get_settings, use_settings  # noqa: E402

logger = logging.getLogger("benchmarks.batch")


def bootstrap_settings(state: Path) -> Settings:
    """Settings of a throwaway platform in ``state``: MLflow on a free loopback port, without
    its basic auth (as the tests run it)."""
    return Settings(
        state_dir=state,
        mlflow={"port": free_port(), "auth": {"enabled": False}},
        log_level="WARNING",
    )


def bootstrap(settings: Settings) -> None:
    """Start MLflow; ingest 2013-01..02, build and apply the Feast repo, train a champion on
    2013-01 (a state folder bootstrapped before is reused)."""
    from driftloop.data.ingest import ingest_months
    from driftloop.features import apply, build_sources
    from driftloop.training.pipeline import train_and_register

    use_settings(settings)
    reuse = (settings.state / "mlflow" / "mlflow.db").exists()
    start_service(mlflow_service(settings), settings)
    if not reuse:
        t0 = time.perf_counter()
        ingest_months(["2013-01", "2013-02"], settings)
        build_sources(None, settings)
        apply(settings)
        result = train_and_register("2013-01", "2013-01", settings, epochs=1)
        logger.info("bootstrapped (v%s) in %.0f s", result.version, time.perf_counter() - t0)


def _interleaved_medians(fns: dict[str, Any], repeats: int) -> dict[str, float]:
    """Median seconds of each function, called in turn (a, b, a, b, ...) after one warm-up each:
    on a shared machine a burst of load then hits both alike, not one measurement."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for fn in fns.values():
        fn()
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(values) for name, values in times.items()}


def run(settings: Settings, month: str, repeats: int, out_dir: Path) -> dict[str, Any]:
    from driftloop.loop.batch import (
        BatchInput,
        batch_score,
        feature_rows,
        read_flights,
        resolve_version,
        score_frame,
    )
    from driftloop.training.pyfunc import load_python_model
    from serving.handles import load_handle

    ends = []
    for i in range(repeats):
        result = batch_score(
            month=month, out=out_dir / f"run-{i}.parquet", settings=settings, log_to_mlflow=False
        )
        ends.append(result)
        logger.info("run %d: %s", i, result.line())
    best = sorted(ends, key=lambda r: r.rows_per_s)[len(ends) // 2]
    rows = best.rows

    info = resolve_version(best.version, settings)
    handle = load_handle(info.name, info.version, settings)
    frame = feature_rows(read_flights(BatchInput.of(month, None), settings), settings)
    chunk = settings.batch.chunk_rows
    bundle = load_python_model(info.uri, settings).bundle
    codes, numeric = bundle.preprocessor.transform(frame[MODEL_INPUT_COLUMNS])

    def forward() -> None:
        for start in range(0, len(codes), chunk):
            bundle.net.predict_proba(codes[start : start + chunk], numeric[start : start + chunk])

    # in memory and cheap: more repetitions than the end-to-end runs
    medians = _interleaved_medians(
        {"score": lambda: score_frame(handle, frame, chunk), "forward": forward}, 5 * repeats
    )
    score_s, forward_s = medians["score"], medians["forward"]
    stages = {k: statistics.median(r.timings[k] for r in ends) for k in best.timings}
    return {
        "month": month,
        "model": f"{info.name} v{info.version}",
        "rows": rows,
        "repeats": repeats,
        "chunk_rows": chunk,
        "cpus": os.cpu_count(),
        "end_to_end": {"seconds": best.seconds, "rows_per_s": best.rows_per_s},
        "stages_s": stages,
        "scoring": {"seconds": score_s, "rows_per_s": rows / score_s},
        "forward_pass": {"seconds": forward_s, "rows_per_s": rows / forward_s},
        "torch_threads": _torch_threads(),
    }


def _torch_threads() -> int:
    import torch

    return int(torch.get_num_threads())


def report(res: dict[str, Any]) -> str:
    base = res["forward_pass"]["rows_per_s"]
    lines = [
        f"batch scoring of {res['month']}: {res['rows']:,} flights, {res['model']}, "
        f"{res['cpus']} CPUs, torch threads {res['torch_threads']}, "
        f"median of {res['repeats']}",
        f"{'':<44}{'seconds':>10}{'rows/s':>12}{'x forward':>11}",
    ]
    for label, key in (
        ("batch-score end to end", "end_to_end"),
        ("scoring (serving handle: prep+torch+calib)", "scoring"),
        ("bare forward pass (baseline)", "forward_pass"),
    ):
        r = res[key]
        lines.append(
            f"{label:<44}{r['seconds']:>10.3f}{r['rows_per_s']:>12,.0f}"
            f"{r['rows_per_s'] / base:>11.3f}"
        )
    lines.append(
        "stages of the end-to-end run (s): "
        + ", ".join(f"{k} {v:.3f}" for k, v in res["stages_s"].items())
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bootstrap", action="store_true", help="Own MLflow, data and champion.")
    p.add_argument("--state", type=Path, help="--bootstrap into (or reuse) this state folder.")
    p.add_argument("--month", help="Month to score (default: 2013-02 with --bootstrap).")
    p.add_argument("--repeats", type=int, default=3, help="Runs per measurement (median).")
    p.add_argument("--json", type=Path, help="Also write the results here.")
    args = p.parse_args(argv)
    configure_logging("INFO")
    for noisy in ("mlflow", "feast", "driftloop"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    os.environ.update(QUIET_ENV)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    tmp = Path(tempfile.mkdtemp(prefix="driftloop-batch-bench-"))
    if args.bootstrap:
        settings = bootstrap_settings(args.state or tmp / "state")
        month = args.month or "2013-02"
    else:
        settings = get_settings()
        if not args.month:
            p.error("--month is needed without --bootstrap")
        month = args.month
    try:
        if args.bootstrap:
            bootstrap(settings)
        res = run(settings, month, max(1, args.repeats), tmp)
    finally:
        if args.bootstrap:
            stop_service(mlflow_service(settings), settings)
        shutil.rmtree(tmp, ignore_errors=True)  # the outputs (and a throwaway --bootstrap state)
    print(report(res))
    if args.json:
        args.json.write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
