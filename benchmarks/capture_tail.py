"""Capture and tail latency: the serving process encoding its capture a chunk at a time (as it
does) against encoding a whole flush at once (as it did), in one command.

Two ``python -m serving`` processes of the same champion run side by side on 127.0.0.1, with
auth on and the same settings; the second imports ``serving.capture`` with ``ENCODE_CHUNK``
set beyond any flush (a ``sitecustomize`` in a temporary folder on its ``PYTHONPATH``), which
is the encoder before chunks: ~500 one-row requests a second encoded in one go, holding the GIL
~5 ms while requests wait. Each round sends both servers ``--duration`` seconds of open-loop
single-row requests at ``--rate`` (order alternating), marked synthetic; p50/p99/p99.9 from the
scheduled send time (:func:`benchmarks.serving.open_loop`). Reports each round, the medians and
how many rounds the chunked encoder had the lower p99 (a sign test's one-sided p-value).

Usage::

    python benchmarks/capture_tail.py --state /tmp/benchstate   # reuses serving.py's state
"""

from __future__ import annotations

import argparse
import math
import os
import secrets
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "platform"), str(ROOT)]

import importlib  # noqa: E402

import orjson  # noqa: E402

from driftloop.embedded.services import free_port, stop_service  # noqa: E402
from driftloop.settings import BearerToken, Settings  # noqa: E402
from serving.examples import features_request  # noqa: E402
from serving.process import ServerProcess  # noqa: E402

bench = importlib.import_module("benchmarks.serving")  # helpers of the serving benchmark

WHOLE_FLUSH = """
import importlib.abc, importlib.util, sys
class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != "serving.capture":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        run = spec.loader.exec_module
        def exec_module(module):
            run(module)
            module.ENCODE_CHUNK = 10**9  # every item of a flush encoded at the flush
        spec.loader.exec_module = exec_module
        return spec
sys.meta_path.insert(0, _Finder())
"""


def serve_settings(settings: Settings, token: str) -> Settings:
    return settings.model_copy(
        update={
            "serving": settings.serving.model_copy(
                update={
                    "port": free_port(),
                    "auth": settings.serving.auth.model_copy(
                        update={"enabled": True, "admin_tokens": [BearerToken(token)]}
                    ),
                    "reconcile_interval_s": 2.0,
                }
            ),
            "log_level": "WARNING",
        }
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--state", type=Path, help="Bootstrap into (or reuse) this state folder.")
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--rate", type=float, default=500.0)
    p.add_argument("--duration", type=float, default=10.0)
    args = p.parse_args(argv)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    tmp = Path(tempfile.mkdtemp(prefix="driftloop-capture-tail-"))
    settings, mlflow_svc = bench.bootstrap(args.state or tmp / "state")
    bench.set_shadow(settings, False)
    token = secrets.token_urlsafe(24)
    os.environ[bench.TOKEN_ENV] = token
    site = tmp / "whole-flush"
    site.mkdir()
    (site / "sitecustomize.py").write_text(WHOLE_FLUSH)
    body = orjson.dumps(features_request(1, synthetic="load-test"))
    name = settings.mlflow.registered_model
    runs: dict[str, list[bench.Result]] = {"chunks (now)": [], "whole flush (before)": []}
    chunked = ServerProcess(serve_settings(settings, token))
    whole = ServerProcess(serve_settings(settings, token))
    try:
        chunked.start()
        previous = os.environ.get("PYTHONPATH")
        os.environ["PYTHONPATH"] = str(site)  # serving_env() appends it to the child's path
        try:
            whole.start()
        finally:
            if previous is None:
                os.environ.pop("PYTHONPATH")
            else:
                os.environ["PYTHONPATH"] = previous
        urls = {
            "chunks (now)": f"{chunked.url}/v2/models/{name}/infer",
            "whole flush (before)": f"{whole.url}/v2/models/{name}/infer",
        }
        for url in urls.values():
            bench.throughput(url, body, 8, 2, "auto")  # warm-up
        order = list(urls)
        for rnd in range(args.rounds):
            for label in order if rnd % 2 == 0 else order[::-1]:
                res = bench.open_loop(urls[label], body, args.rate, args.duration)
                runs[label].append(res)
                print(
                    f"round {rnd} {label:<22} p50 {res.p50_ms:6.2f}  p99 {res.p99_ms:6.2f}  "
                    f"p99.9 {res.p999_ms:6.2f} ms  (generator lag {res.generator_lag_ms:.1f})",
                    flush=True,
                )
    finally:
        chunked.stop()
        whole.stop()
        stop_service(mlflow_svc, settings)
    print(f"\n{args.rate:.0f} req/s, single-row requests, {args.rounds} x {args.duration:.0f} s")
    for label, results in runs.items():
        print(
            f"{label:<22} p99 median {statistics.median(r.p99_ms for r in results):.2f} ms, "
            f"p50 median {statistics.median(r.p50_ms for r in results):.2f} ms"
        )
    pairs = list(zip(runs["chunks (now)"], runs["whole flush (before)"], strict=True))
    wins = sum(a.p99_ms < b.p99_ms for a, b in pairs)
    p_value = sum(math.comb(len(pairs), k) for k in range(wins, len(pairs) + 1)) / 2 ** len(pairs)
    ratio = statistics.median(a.p99_ms / b.p99_ms for a, b in pairs)
    print(
        f"chunks had the lower p99 in {wins} of {len(pairs)} rounds (sign test, one-sided "
        f"p = {p_value:.3f}); median p99 ratio now / before {ratio:.2f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
