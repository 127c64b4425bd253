"""Paired A/B of the inference API: this tree against another checkout (``--base-tree``, e.g.
``git worktree add /tmp/base <commit>``), same champion, same machine, alternating bursts so
both see the same noise. Loopback only, bounded (rounds x 2 x (throughput + fixed-rate) s).

Both servers run at once on free ports of 127.0.0.1 (one uvicorn worker each); per round each
gets a closed-loop throughput burst (one feature row per request) and a fixed-rate burst of
single-row flight requests (online features); the order alternates between rounds. Reports each
round, the medians and the throughput ratio this/base.

Usage::

    git worktree add /tmp/base HEAD~3
    python benchmarks/serving_ab.py --base-tree /tmp/base --state /tmp/benchstate
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "platform"), str(ROOT)]

import httpx  # noqa: E402
import orjson  # noqa: E402

from driftloop.embedded.services import free_port, stop_service  # noqa: E402
from serving.examples import features_request, flight_request  # noqa: E402
from serving.process import serving_env  # noqa: E402


def _bench_module() -> Any:  # the sibling benchmark: its load generators and bootstrap
    spec = importlib.util.spec_from_file_location("serving_bench", ROOT / "benchmarks/serving.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["serving_bench"] = module
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base-tree", type=Path, required=True, help="Checkout to compare against.")
    p.add_argument("--state", type=Path, required=True, help="Bootstrapped (or new) state folder.")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--seconds", type=float, default=5.0, help="Seconds per burst.")
    p.add_argument("--rate", type=float, default=500.0, help="Fixed-rate burst: requests/s.")
    args = p.parse_args(argv)
    bench = _bench_module()
    settings, mlflow_svc = bench.bootstrap(args.state)
    name = settings.mlflow.registered_model
    procs: dict[str, subprocess.Popen[bytes]] = {}
    urls: dict[str, str] = {}
    try:
        for label, root in (("this", ROOT), ("base", args.base_tree.resolve())):
            port = free_port()
            serving = settings.serving.model_copy(
                update={
                    "port": port,
                    "auth": settings.serving.auth.model_copy(update={"enabled": False}),
                }
            )
            s = settings.model_copy(update={"serving": serving, "log_level": "WARNING"})
            env = serving_env(s) | {
                "PYTHONPATH": f"{root / 'platform'}:{root}",
                "DRIFTLOOP_PROJECT_ROOT": str(root),
            }
            log = open(args.state / f"serving-ab-{label}.log", "wb")  # noqa: SIM115
            cmd = [sys.executable, "-m", "serving"]
            procs[label] = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=log)
            urls[label] = f"http://127.0.0.1:{port}/v2/models/{name}/infer"
        body = orjson.dumps(features_request(1))
        flight = orjson.dumps(flight_request(1))
        for label, url in urls.items():
            base = url.split("/v2/")[0]
            bench._wait(f"{base}/v2/health/ready", 180, procs[label])
            bench.throughput(url, body, 8, 2, "python")  # warm-up
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:  # the online store opens in the background
                if httpx.get(f"{base}/v2/health/ready").json().get("online_features"):
                    break
                time.sleep(0.5)
        rps: dict[str, list[float]] = {"this": [], "base": []}
        p99: dict[str, list[float]] = {"this": [], "base": []}
        for rnd in range(args.rounds):
            for label in ("this", "base") if rnd % 2 == 0 else ("base", "this"):
                r = bench.throughput(urls[label], body, 8, args.seconds, "python")
                f = bench.open_loop(urls[label], flight, args.rate, args.seconds)
                rps[label].append(r.rps)
                p99[label].append(f.p99_ms)
                print(
                    f"round {rnd} {label}: {r.rps:.0f} req/s (p99 {r.p99_ms:.1f} ms) | "
                    f"{args.rate:.0f} req/s flight rows p99 {f.p99_ms:.2f} ms",
                    flush=True,
                )
        for label in ("this", "base"):
            print(
                f"{label}: median {statistics.median(rps[label]):.0f} req/s, median fixed-rate "
                f"p99 {statistics.median(p99[label]):.2f} ms"
            )
        ratio = statistics.median(rps["this"]) / statistics.median(rps["base"])
        print(f"throughput ratio this/base: {ratio:.2f}x")
    finally:
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            proc.wait(20)
        stop_service(mlflow_svc, settings)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
