"""Capture writer benchmark: the CPU its writer thread spends encoding one flush of queued
requests into an Arrow batch, per flush and per request.

The writer thread holds the GIL while it encodes, so this is time the event loop cannot answer
requests in (serving's p99 at a fixed rate). Requests are shaped as the dataplane queues them:
lists from the JSON body, numpy arrays for the derived columns, the metadata of
``serving.dataplane``. With ``--base-tree`` the same flushes are encoded by another checkout's
writer (e.g. ``git worktree add /tmp/base <commit>``) in the same command, alternating, and the
ratio is printed.

Usage::

    python benchmarks/capture.py
    python benchmarks/capture.py --base-tree /tmp/base
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "platform"), str(ROOT)]

from driftloop.schema import CATEGORICAL_COLUMNS, NUMERIC_COLUMNS  # noqa: E402
from driftloop.settings import Settings  # noqa: E402


def _writer_module(tree: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, tree / "serving" / "capture.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def request(i: int, rows: int) -> tuple[Any, ...]:
    """One queued request of ``rows`` complete feature rows, as the dataplane puts it."""
    meta = {
        "request_id": f"bench-{i:08d}",
        "ts": datetime.now(UTC),
        "routing_key": f"key-{i}",
        "variant": "champion",
        "served": True,
        "routed": True,
        "model_name": "flight-delay",
        "model_version": "3",
        "latency_ms": 1.2,
        "model_ms": 0.1,
        "error": None,
        "decision_threshold": 0.41,
        "lineage_id": "0123456789abcdef",
        "synthetic": None,
    }
    inputs: dict[str, Any] = {c: ["UA"] * rows for c in CATEGORICAL_COLUMNS}
    inputs.update({c: [1.5] * rows for c in NUMERIC_COLUMNS})
    inputs["dep_hour"] = np.full(rows, 9.0)
    inputs["day_of_week"] = np.full(rows, 2.0)
    departures = [datetime(2013, 5, 1, 13, tzinfo=UTC)] * rows
    return (meta, rows, np.full(rows, 0.3), inputs, departures)


def time_encode(writer: Any, items: list[Any], repeats: int) -> float:
    """Median seconds of one ``_encode_all`` of ``items``."""
    writer._encode_all(items)  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        writer._encode_all(items)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-tree", type=Path, help="another checkout to compare with")
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args(argv)
    settings = Settings(state_dir=Path(tempfile.mkdtemp(prefix="driftloop-capture-bench-")))
    writers = {"this tree": _writer_module(ROOT, "capture_this").CaptureWriter(settings)}
    if args.base_tree:
        base = _writer_module(args.base_tree.resolve(), "capture_base")
        writers["base"] = base.CaptureWriter(settings)
    print("capture writer: encoding one flush (median of", args.repeats, "encodes)")
    head = f"{'flush':<28}" + "".join(f"{name:>22}" for name in writers)
    print(head + ("   this/base" if "base" in writers else ""))
    flushes = ((1, 1), (100, 1), (500, 1), (2000, 1), (150, 10), (30, 50), (15, 100), (20, 1000))
    for requests, rows in flushes:
        items = [request(i, rows) for i in range(requests)]
        seconds = {name: time_encode(w, items, args.repeats) for name, w in writers.items()}
        cells = "".join(
            f"{s * 1e3:9.2f} ms {s / requests * 1e6:6.1f} us/r" for s in seconds.values()
        )
        ratio = f"{seconds['this tree'] / seconds['base']:12.2f}" if "base" in seconds else ""
        print(f"{requests:>5} requests x {rows:>4} rows  {cells}{ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
