"""Serving benchmark: driftloop's inference API vs ``mlflow models serve`` on the same champion.

Both servers run on 127.0.0.1 with one worker each (``mlflow models serve --env-manager local``)
and get the same bounded load (a fixed duration; loopback only):

1. throughput (closed loop, ``--connections`` keep-alive connections, one feature row per
   request): req/s, p50/p99 of each server and their ratio (target: driftloop >= 3x);
2. driftloop at a fixed ``--rate`` (open loop, latency measured from the scheduled send time, so
   queueing counts) with single-row *flight* requests: features come from the online store
   (target: p99 <= 10 ms at 500 req/s);
3. the online feature lookup alone (``OnlineFeatures.lookup`` of one row, in process: what
   serving calls).

Load generator: ``wrk`` (Debian package; a Lua script posts the body) for (1) when installed,
else a Python asyncio generator with raw HTTP/1.1; (2) always uses the Python open-loop
generator (wrk cannot hold a fixed rate). The report names which was used.

Usage::

    python benchmarks/serving.py                 # the running platform's champion (driftloop up)
    python benchmarks/serving.py --bootstrap     # own MLflow, 2 months of data, a trained champion
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "platform"), str(ROOT)]

from driftloop.data.ingest import ingest_months  # noqa: E402
from driftloop.embedded.services import (  # noqa: E402
    free_port,
    mlflow_service,
    start_service,
    stop_service,
    venv_bin,
)
from driftloop.logs import configure_logging  # noqa: E402
from driftloop.registry.client import CHAMPION, get_alias  # noqa: E402
from driftloop.schema import MODEL_INPUT_COLUMNS  # noqa: E402
from driftloop.settings import QUIET_ENV, Settings, get_settings, use_settings  # noqa: E402
from serving.examples import FLIGHT, ROW, features_request, flight_request  # noqa: E402
from serving.process import ServerProcess  # noqa: E402

logger = logging.getLogger("benchmark")


@dataclass
class Result:
    name: str
    generator: str
    requests: int
    errors: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    max_ms: float | None = None
    target_rps: float | None = None
    generator_lag_ms: float | None = None


# -- load generators ----------------------------------------------------------------------------
def _raw_post(host: str, port: int, path: str, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n"
    )
    return head.encode() + body


async def _roundtrip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, raw: bytes) -> int:
    writer.write(raw)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    match = re.search(rb"(?i)content-length:\s*(\d+)", head)
    if match:
        await reader.readexactly(int(match.group(1)))
    else:  # chunked
        while True:
            size = int((await reader.readline()).strip(), 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    return status


async def _closed_loop(url: str, body: bytes, connections: int, seconds: float) -> Result:
    u = httpx.URL(url)
    host, port = u.host, int(u.port or 80)
    raw = _raw_post(host, port, u.raw_path.decode(), body)
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                status = await _roundtrip(reader, writer, raw)
                latencies.append(time.perf_counter() - t0)
                errors += status != 200
        finally:
            writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    took = time.perf_counter() - start
    lat = np.array(latencies) * 1e3
    return Result(
        url,
        "python",
        len(lat),
        errors,
        took,
        len(lat) / took,
        float(np.percentile(lat, 50)),
        float(np.percentile(lat, 99)),
        float(lat.max()),
    )


async def _open_loop(url: str, body: bytes, rate: float, seconds: float, pool: int) -> Result:
    """Send at a fixed rate; latency from the scheduled send time (no coordinated omission)."""
    u = httpx.URL(url)
    host, port = u.host, int(u.port or 80)
    raw = _raw_post(host, port, u.raw_path.decode(), body)
    conns: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(pool):
        conns.put_nowait(await asyncio.open_connection(host, port))
    latencies: list[float] = []
    errors = 0
    total = int(rate * seconds)
    start = time.perf_counter()

    async def one(scheduled: float) -> None:
        nonlocal errors
        reader, writer = await conns.get()
        try:
            status = await _roundtrip(reader, writer, raw)
        finally:
            conns.put_nowait((reader, writer))
        latencies.append(time.perf_counter() - scheduled)
        errors += status != 200

    tasks = []
    send_lag = 0.0  # how late the generator itself was (a busy generator inflates latency)
    gc.collect()
    gc.disable()  # the generator's own collections would show up as server latency
    for i in range(total):
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            send_lag = max(send_lag, -delay)
        tasks.append(asyncio.ensure_future(one(scheduled)))
    await asyncio.gather(*tasks)
    took = time.perf_counter() - start
    gc.enable()
    while not conns.empty():
        conns.get_nowait()[1].close()
    lat = np.array(latencies) * 1e3
    return Result(
        url,
        "python open-loop",
        len(lat),
        errors,
        took,
        len(lat) / took,
        float(np.percentile(lat, 50)),
        float(np.percentile(lat, 99)),
        float(lat.max()),
        rate,
        send_lag * 1e3,
    )


def open_loop(url: str, body: bytes, rate: float, seconds: float, pool: int = 16) -> Result:
    """Run the fixed-rate generator in a fresh process: this process holds MLflow, Feast and
    torch object graphs and threads whose pauses would count as server latency."""
    with tempfile.NamedTemporaryFile("wb", suffix=".json", delete=False) as f:
        f.write(body)
    try:
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--generate",
                url,
                f.name,
                str(rate),
                str(seconds),
                str(pool),
            ],
            capture_output=True,
            text=True,
            timeout=seconds + 120,
            check=True,
        ).stdout
    finally:
        os.unlink(f.name)
    return Result(**json.loads(out.strip().splitlines()[-1]))


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _wrk(url: str, body: bytes, connections: int, seconds: float) -> Result:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(
            'wrk.method = "POST"\n'
            'wrk.headers["Content-Type"] = "application/json"\n'
            f"wrk.body = [==[{body.decode()}]==]\n"
        )
    try:
        out = subprocess.run(
            [
                "wrk",
                "-t1",
                f"-c{connections}",
                f"-d{int(seconds)}s",
                "--latency",
                "-s",
                script.name,
                url,
            ],
            capture_output=True,
            text=True,
            timeout=seconds + 60,
            check=True,
        ).stdout
    finally:
        os.unlink(script.name)

    def pct(p: str) -> float:
        m = re.search(rf"^\s*{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        return float(m.group(1)) * _UNITS[m.group(2)] if m else float("nan")

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    sock = re.search(r"Socket errors:.*?(\d+).*?(\d+).*?(\d+).*?(\d+)", out)
    errors = (int(bad.group(1)) if bad else 0) + (sum(int(g) for g in sock.groups()) if sock else 0)
    return Result(url, "wrk", total, errors, seconds, rps, pct("50"), pct("99"))


def throughput(url: str, body: bytes, connections: int, seconds: float, gen: str) -> Result:
    if gen == "wrk" or (gen == "auto" and shutil.which("wrk")):
        return _wrk(url, body, connections, seconds)
    return asyncio.run(_closed_loop(url, body, connections, seconds))


# -- servers ------------------------------------------------------------------------------------
def _wait(url: str, timeout: float = 120.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited ({proc.returncode}) before {url} answered")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code == 200:
                return
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


@contextlib.contextmanager
def mlflow_models_serve(settings: Settings, model_uri: str, log: Path):
    port = free_port()
    env = {**os.environ, **QUIET_ENV, "MLFLOW_TRACKING_URI": settings.mlflow.uri}
    # mlflow execs `uvicorn` by name: put the interpreter's scripts folder first on PATH.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [
                venv_bin("mlflow"),
                "models",
                "serve",
                "-m",
                model_uri,
                "--env-manager",
                "local",
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "--workers",
                "1",
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait(f"http://127.0.0.1:{port}/ping", proc=proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 15)
        proc.wait(30)


# -- bootstrap a real champion ------------------------------------------------------------------
def bootstrap(state: Path) -> tuple[Settings, Any]:
    """Own MLflow server, two ingested months, features materialized, a trained champion
    (a state folder bootstrapped before is reused: only its MLflow server is started)."""
    # not at the top: the light --generate child process imports this module too
    from driftloop.features import apply, build_sources, materialize  # start-up cost ~1 s
    from driftloop.training.pipeline import train_and_register  # torch + MLflow: ~4 s

    settings = Settings(state_dir=state, mlflow={"port": free_port()}, log_level="WARNING")
    use_settings(settings)
    reuse = (state / "mlflow" / "mlflow.db").exists()
    start_service(mlflow_service(settings), settings)
    if reuse:
        return settings, mlflow_service(settings)
    t0 = time.perf_counter()
    ingest_months(["2013-01", "2013-02"], settings)
    build_sources(None, settings)
    apply(settings)
    materialize(None, settings)
    logger.info("data + features ready in %.0f s", time.perf_counter() - t0)
    t0 = time.perf_counter()
    result = train_and_register("2013-01", "2013-01", settings, epochs=2)
    logger.info("trained %s in %.0f s", result, time.perf_counter() - t0)
    return settings, mlflow_service(settings)


def feature_lookup_latency(settings: Settings, n: int = 2000) -> dict[str, float] | None:
    try:
        from driftloop.features import OnlineFeatures  # start-up cost, see bootstrap()

        online = OnlineFeatures(settings)
    except Exception as exc:
        logger.warning("no online store to time: %s", exc)
        return None
    rows = [{k: FLIGHT[k] for k in ("carrier", "origin", "tailnum")}]
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        online.lookup(rows)
        times.append(time.perf_counter() - t0)
    lat = np.array(times) * 1e6
    return {"p50_us": float(np.percentile(lat, 50)), "p99_us": float(np.percentile(lat, 99))}


# -- main ---------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--generate"]:  # child process of open_loop()
        url, body_file, rate, seconds, pool = argv[1:6]
        body = Path(body_file).read_bytes()
        res = asyncio.run(_open_loop(url, body, float(rate), float(seconds), int(pool)))
        print(json.dumps(asdict(res)))
        return 0
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bootstrap", action="store_true", help="Own MLflow, data and champion.")
    p.add_argument("--state", type=Path, help="--bootstrap into (or reuse) this state folder.")
    p.add_argument("--duration", type=float, default=10.0, help="Seconds per throughput run.")
    p.add_argument("--connections", type=int, default=8, help="Closed-loop connections.")
    p.add_argument("--rate", type=float, default=500.0, help="Fixed-rate test: requests/s.")
    p.add_argument("--rate-duration", type=float, default=10.0, help="Fixed-rate test seconds.")
    p.add_argument(
        "--online-refresh-s",
        type=float,
        help="Override features.online_refresh_s of the server (a refresh re-reads the store).",
    )
    p.add_argument("--generator", choices=["auto", "wrk", "python"], default="auto")
    p.add_argument("--json", type=Path, help="Also write the results here.")
    args = p.parse_args(argv)
    configure_logging("INFO")
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    os.environ.update(QUIET_ENV)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

    tmp = Path(tempfile.mkdtemp(prefix="driftloop-bench-"))
    mlflow_svc = None
    if args.bootstrap:
        settings, mlflow_svc = bootstrap(args.state or tmp / "state")
    else:
        settings = get_settings()
    try:
        champion = get_alias(CHAMPION, settings)
        if champion is None:
            raise SystemExit(f"model {settings.mlflow.registered_model} has no champion")
        model_uri = champion.uri
        serve_settings = settings.model_copy(
            update={
                "serving": settings.serving.model_copy(
                    update={
                        "port": free_port(),
                        "auth": settings.serving.auth.model_copy(update={"enabled": False}),
                    }
                ),
                "log_level": "WARNING",
            }
        )
        if args.online_refresh_s is not None:
            serve_settings = serve_settings.model_copy(
                update={
                    "features": settings.features.model_copy(
                        update={"online_refresh_s": args.online_refresh_s}
                    )
                }
            )
        name = settings.mlflow.registered_model
        oip_body = orjson.dumps(features_request(1))
        mlflow_body = orjson.dumps(
            {
                "dataframe_split": {
                    "columns": MODEL_INPUT_COLUMNS,
                    "data": [[ROW[c] for c in MODEL_INPUT_COLUMNS]],
                }
            }
        )
        results: dict[str, Any] = {"model": model_uri, "cpus": os.cpu_count()}

        with ServerProcess(serve_settings) as dl:
            url = f"{dl.url}/v2/models/{name}/infer"
            assert (
                httpx.post(
                    url, content=oip_body, headers={"Content-Type": "application/json"}
                ).status_code
                == 200
            )
            throughput(url, oip_body, args.connections, 2, args.generator)  # warm-up
            ours = throughput(url, oip_body, args.connections, args.duration, args.generator)
            flight = orjson.dumps(flight_request(1))
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:  # the online store opens in the background
                if httpx.get(f"{dl.url}/v2/health/ready").json().get("online_features"):
                    break
                time.sleep(0.5)
            probe = httpx.post(url, content=flight, headers={"Content-Type": "application/json"})
            if probe.status_code == 200:
                fixed = open_loop(url, flight, args.rate, args.rate_duration)
                fixed.name = "driftloop flight rows (online features) at fixed rate"
            else:
                logger.warning(
                    "flight mode unavailable (%s): fixed rate with feature rows",
                    probe.json().get("error"),
                )
                fixed = open_loop(url, oip_body, args.rate, args.rate_duration)
                fixed.name = "driftloop feature rows (NO online lookup) at fixed rate"
        ours.name = "driftloop OIP v2, 1 feature row"

        with mlflow_models_serve(settings, model_uri, tmp / "mlflow-serve.log") as ml:
            url = f"{ml}/invocations"
            r = httpx.post(url, content=mlflow_body, headers={"Content-Type": "application/json"})
            assert r.status_code == 200, r.text
            throughput(url, mlflow_body, args.connections, 2, args.generator)
            theirs = throughput(url, mlflow_body, args.connections, args.duration, args.generator)
        theirs.name = "mlflow models serve /invocations, 1 row"

        lookup = feature_lookup_latency(settings)
        results.update(
            driftloop=asdict(ours),
            mlflow=asdict(theirs),
            fixed_rate=asdict(fixed),
            throughput_ratio=ours.rps / theirs.rps,
            feature_lookup=lookup,
        )
        print(
            f"\nmodel {model_uri}; load generator: {ours.generator}; "
            f"{args.connections} connections, {args.duration:.0f} s per run\n"
        )
        print(f"{'server':<58}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}")
        for res in (ours, theirs, fixed):
            print(
                f"{res.name:<58}{res.rps:>9.0f}{res.p50_ms:>9.2f}{res.p99_ms:>9.2f}{res.errors:>8}"
            )
        print(f"\nthroughput ratio driftloop / mlflow: {ours.rps / theirs.rps:.1f}x (target >= 3x)")
        print(
            f"fixed rate {fixed.target_rps:.0f} req/s: achieved {fixed.rps:.0f}, "
            f"p99 {fixed.p99_ms:.2f} ms (target <= 10 ms), max {fixed.max_ms:.1f} ms; "
            f"generator lag max {fixed.generator_lag_ms:.1f} ms; online refresh every "
            f"{serve_settings.features.online_refresh_s:g} s"
        )
        if lookup:
            print(
                f"online feature lookup alone (1 row): p50 {lookup['p50_us']:.0f} us, "
                f"p99 {lookup['p99_us']:.0f} us"
            )
        if args.json:
            args.json.write_text(json.dumps(results, indent=2))
        return 0
    finally:
        if mlflow_svc is not None:
            stop_service(mlflow_svc, settings)


if __name__ == "__main__":
    raise SystemExit(main())
