"""Serving benchmark: driftloop's inference API against its floor and against ``mlflow models
serve``, on the same champion, in one command.

Four servers run at once on 127.0.0.1, one worker each: driftloop (``python -m serving``,
with routing, capture, metrics, the rate limit and bearer-token auth ON), the bare FastAPI
endpoint of :mod:`bare_endpoint` (the same v2 body parsed and validated with pydantic, the
same model of the same registered version on the same runtime, a v2 answer: the framework's
floor), the same bare endpoint with the torch model (the floor as first measured, when serving
ran torch; ``--no-bare-torch`` leaves it out), and ``mlflow models serve --env-manager local``
(``dataframe_split``). Loopback only, bounded:

1. throughput (closed loop, ``--connections`` keep-alive connections, one complete feature row
   per request) in ``--rounds`` rounds; each round gives every server one burst, the order
   rotating, so all see the same noise of a shared machine. Reports the medians and the
   ratios driftloop / bare (goal >= 0.9) and driftloop / mlflow;
2. latency at a fixed ``--rate`` (open loop, measured from the scheduled send time, so queueing
   counts; single-row requests): complete feature rows (goal p99 <= 5 ms), flight rows with the
   online feature lookup (goal <= 7 ms), the bare endpoint for reference, and (``--bootstrap``)
   feature rows with a challenger in shadow mode scoring a copy of every request (goal: adds
   <= 1 ms p99); p50, p99 and p99.9;
3. batches: rows/s of 1, 10, 100 and 1,000-row requests (driftloop and bare), and the model's
   bare forward pass on 1,000 rows timed in a child process (preprocessing + torch, and torch
   alone; and serving's NumPy runtime, :mod:`driftloop.inference`, the same two ways): per-row
   cost at 1,000 rows, goal within 2x of the forward pass;
4. memory: peak RSS (VmHWM) of the driftloop serving process, with champion and challenger
   loaded when ``--bootstrap`` (goal <= 400 MB);
5. the online feature lookup alone (``OnlineFeatures.lookup`` of one row, in process).

Load generator: ``wrk`` (Debian package; a Lua script posts the body) for (1) and (3) when
installed, else a Python asyncio generator with raw HTTP/1.1; (2) always uses the Python
open-loop generator (wrk cannot hold a fixed rate), in a child process. The report names which
was used.

Usage::

    python benchmarks/serving.py                 # the running platform's champion (driftloop up)
    python benchmarks/serving.py --bootstrap     # own MLflow, 2 months of data, a trained champion
    python benchmarks/serving.py --bootstrap --state /tmp/benchstate --rounds 3 --json out.json
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
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
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
from driftloop.settings import (  # noqa: E402
    QUIET_ENV,
    BearerToken,
    Settings,
    get_settings,
    use_settings,
)
from serving.examples import FLIGHT, ROW, features_request, flight_request  # noqa: E402
from serving.process import ServerProcess, serving_env  # noqa: E402

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
    p999_ms: float | None = None
    target_rps: float | None = None
    generator_lag_ms: float | None = None


# -- load generators ----------------------------------------------------------------------------
#: Environment variable carrying the bearer token to the load generators (never on a command line).
TOKEN_ENV = "DRIFTLOOP_BENCH_TOKEN"


def _auth_line() -> str:
    token = os.environ.get(TOKEN_ENV)
    return f"Authorization: Bearer {token}\r\n" if token else ""


def _raw_post(host: str, port: int, path: str, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"{_auth_line()}Content-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n"
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
        float(np.percentile(lat, 99.9)),
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
        float(np.percentile(lat, 99.9)),
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
            + (
                f'wrk.headers["Authorization"] = "Bearer {os.environ[TOKEN_ENV]}"\n'
                if os.environ.get(TOKEN_ENV)
                else ""
            )
            + f"wrk.body = [==[{body.decode()}]==]\n"
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

    # MLflow without its basic auth: the benchmark measures serving, not the registry's access
    # control (as the tests' MLflow server, tests/conftest.py)
    settings = Settings(
        state_dir=state,
        mlflow={"port": free_port(), "auth": {"enabled": False}},
        log_level="WARNING",
    )
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


@contextlib.contextmanager
def bare_endpoint(
    settings: Settings, model_uri: str, log: Path, runtime: str = "serving"
) -> Iterator[tuple[str, int]]:
    """:mod:`bare_endpoint` on a free port of 127.0.0.1 scoring with ``runtime`` (``serving``:
    what driftloop runs for the version; ``torch``): ``(base url, pid)``."""
    port = free_port()
    env = serving_env(settings)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "benchmarks" / "bare_endpoint.py"),
                *("--model", model_uri, "--port", str(port), "--runtime", runtime),
            ],
            env=env,
            cwd=str(ROOT),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait(f"http://127.0.0.1:{port}/v2/health/ready", 180, proc)
        yield f"http://127.0.0.1:{port}", proc.pid
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 15)
        proc.wait(30)


def peak_rss_mb(pid: int) -> dict[str, float]:
    """Peak (VmHWM) and current (VmRSS) resident memory of process ``pid``, MB."""
    status = Path(f"/proc/{pid}/status").read_text()
    out = {}
    for key, name in (("VmHWM", "peak_rss_mb"), ("VmRSS", "rss_mb")):
        m = re.search(rf"^{key}:\s+(\d+) kB", status, re.M)
        out[name] = int(m.group(1)) / 1024 if m else float("nan")
    return out


def set_shadow(settings: Settings, on: bool) -> None:
    """``on``: a second version of the champion's own model (registered from the same source)
    as challenger, in shadow mode with weight 100 (every request scored twice); off: no
    challenger. Through the audited registry writers; only on a bootstrapped registry (the
    benchmark never steers a real one)."""
    from driftloop.registry import promotion
    from driftloop.registry.client import (
        CHALLENGER,
        get_alias,
        register_version,
        registry_snapshot,
    )

    snap = registry_snapshot(settings)
    if not on:
        if snap.challenger is not None:
            promotion.rollback("benchmark", "serving benchmark done", settings=settings)
        return
    if snap.challenger is None:
        champion = get_alias(CHAMPION, settings)
        assert champion is not None
        tags = {k: v for k, v in champion.tags.items() if k.startswith("driftloop.")}
        copy = register_version(champion.source, champion.run_id, tags, settings)
        promotion.assign_alias_after_gate(
            copy.version, CHALLENGER, "serving benchmark: shadow copy", settings=settings
        )
    promotion.set_mode("shadow", "benchmark", "serving benchmark", settings)
    promotion.set_weight(100, "benchmark", "serving benchmark: shadow every request", settings)


def shadow_dropped(base: str) -> float | None:
    """``driftloop_shadow_dropped_total`` of the server now (None when it is not exported)."""
    text = httpx.get(f"{base}/metrics", timeout=10).text
    found = re.search(r"^driftloop_shadow_dropped_total ([0-9.e+]+)$", text, re.M)
    return float(found.group(1)) if found else None


def wait_health(base: str, want: Callable[[dict[str, Any]], bool], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError, ValueError):
            if want(httpx.get(f"{base}/v2/health/ready", timeout=2).json()):
                return
        time.sleep(0.5)
    raise RuntimeError(f"{base} did not reach the wanted state within {timeout} s")


PATHS = (str(ROOT / "platform"), str(ROOT))
FORWARD_CODE = """
import json, sys, time
sys.path[:0] = sys.argv[3:]
import numpy as np, torch
from driftloop.training.bundle import ModelBundle
from serving.examples import features_request
bundle = ModelBundle.load(sys.argv[1])
n = int(sys.argv[2])
cols = {t["name"]: t["data"] for t in features_request(n)["inputs"]}
codes, numeric = bundle.preprocessor.transform(cols)
def best(fn, reps=200):
    for _ in range(20):
        fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter(); fn(); times.append(time.perf_counter() - t0)
    return float(np.median(times))
out = {"threads": torch.get_num_threads(),
       "predict_proba_s": best(lambda: bundle.predict_proba(cols)),
       "forward_s": best(lambda: bundle.net.predict_proba(codes, numeric))}
from pathlib import Path
if (Path(sys.argv[1]) / "weights.npz").is_file():  # serving's runtime (driftloop.inference)
    from driftloop.inference.model import NumpyModel
    model = NumpyModel.load(Path(sys.argv[1]))
    out["numpy_predict_proba_s"] = best(lambda: model.predict_proba(cols))
    out["numpy_forward_s"] = best(lambda: model.net.logits(codes, numeric))
print(json.dumps(out))
"""


def forward_pass(settings: Settings, model_uri: str, n: int) -> dict[str, float]:
    """The champion's bare forward pass on ``n`` rows, in a fresh process with torch's default
    threads (as the servers): the median seconds of ``ModelBundle.predict_proba`` (preprocessing
    + torch + calibration) and of the torch net alone."""
    from driftloop.registry.integrity import verified_dir

    with verified_dir(model_uri, settings) as local:
        bundle_dir = next(p.parent for p in Path(local).rglob("weights.pt"))
        out = subprocess.run(
            [sys.executable, "-c", FORWARD_CODE, str(bundle_dir), str(n), *PATHS],
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        ).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


def _median(results: list[Result]) -> Result:
    """The run of median throughput (its own latencies), with the median req/s."""
    ordered = sorted(results, key=lambda r: r.rps)
    mid = ordered[len(ordered) // 2]
    return Result(**{**asdict(mid), "rps": statistics.median(r.rps for r in results)})


def _ms(value: float | None) -> str:
    return "-" if value is None or value != value else f"{value:.2f}"


def _row(label: str, res: Result, rows: int = 1) -> str:
    return (
        f"{label:<52}{res.rps:>9.0f}{res.rps * rows:>10.0f}{_ms(res.p50_ms):>10}"
        f"{_ms(res.p99_ms):>10}{_ms(res.p999_ms):>10}{res.errors:>7}"
    )


HEADER = f"{'':<52}{'req/s':>9}{'rows/s':>10}{'p50':>10}{'p99':>10}{'p99.9':>10}{'errors':>7}"


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
    p.add_argument("--rounds", type=int, default=3, help="Alternating throughput rounds.")
    p.add_argument("--duration", type=float, default=10.0, help="Seconds per throughput burst.")
    p.add_argument("--connections", type=int, default=8, help="Closed-loop connections.")
    p.add_argument("--rate", type=float, default=500.0, help="Fixed-rate test: requests/s.")
    p.add_argument("--rate-duration", type=float, default=10.0, help="Fixed-rate test seconds.")
    p.add_argument(
        "--batches",
        default="1,10,100,1000",
        help="Rows per request of the batch runs (comma-separated; empty: none).",
    )
    p.add_argument("--batch-duration", type=float, default=5.0, help="Seconds per batch run.")
    p.add_argument("--no-mlflow", action="store_true", help="Leave `mlflow models serve` out.")
    p.add_argument(
        "--no-bare-torch",
        action="store_true",
        help="Leave out the bare endpoint with the torch model (the floor before NumPy serving).",
    )
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
        set_shadow(settings, False)  # a reused state: no challenger left from a run before
    else:
        settings = get_settings()
    try:
        champion = get_alias(CHAMPION, settings)
        if champion is None:
            raise SystemExit(f"model {settings.mlflow.registered_model} has no champion")
        return run(args, settings, champion.uri, tmp)
    finally:
        if mlflow_svc is not None:
            with contextlib.suppress(Exception):
                set_shadow(settings, False)
            stop_service(mlflow_svc, settings)


def run(args: argparse.Namespace, settings: Settings, model_uri: str, tmp: Path) -> int:
    token = secrets.token_urlsafe(24)
    os.environ[TOKEN_ENV] = token  # the generators (and their child processes) send it
    serve_settings = settings.model_copy(
        update={
            "serving": settings.serving.model_copy(
                update={
                    "port": free_port(),
                    "auth": settings.serving.auth.model_copy(
                        # admin: marking traffic synthetic needs the admin scope
                        update={"enabled": True, "admin_tokens": [BearerToken(token)]}
                    ),
                    "reconcile_interval_s": 2.0,
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
    gen = args.generator
    # load-test traffic is marked: served and counted, kept out of monitoring and canary evidence
    mark = {"synthetic": "load-test"}
    body = orjson.dumps(features_request(1, **mark))
    mlflow_body = orjson.dumps(
        {
            "dataframe_split": {
                "columns": MODEL_INPUT_COLUMNS,
                "data": [[ROW[c] for c in MODEL_INPUT_COLUMNS]],
            }
        }
    )
    results: dict[str, Any] = {"model": model_uri, "cpus": os.cpu_count()}
    with contextlib.ExitStack() as stack:
        dl = stack.enter_context(ServerProcess(serve_settings))
        assert dl.proc is not None
        dl_pid = dl.proc.pid
        bare_base, _ = stack.enter_context(
            bare_endpoint(serve_settings, model_uri, tmp / "bare.log")
        )
        urls = {
            "driftloop": f"{dl.url}/v2/models/{name}/infer",
            "bare": f"{bare_base}/v2/models/{name}/infer",
        }
        bodies = {"driftloop": body, "bare": body}
        if not args.no_bare_torch:
            torch_base, _ = stack.enter_context(
                bare_endpoint(serve_settings, model_uri, tmp / "bare-torch.log", "torch")
            )
            urls["bare-torch"] = f"{torch_base}/v2/models/{name}/infer"
            bodies["bare-torch"] = body
        if not args.no_mlflow:
            ml = stack.enter_context(
                mlflow_models_serve(settings, model_uri, tmp / "mlflow-serve.log")
            )
            urls["mlflow"] = f"{ml}/invocations"
            bodies["mlflow"] = mlflow_body
        auth = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
        for label, url in urls.items():
            r = httpx.post(url, content=bodies[label], headers=auth)
            assert r.status_code == 200, f"{label}: {r.status_code} {r.text[:200]}"
            throughput(url, bodies[label], args.connections, 2, gen)  # warm-up
        unauthenticated = httpx.post(
            urls["driftloop"], content=body, headers=auth | {"Authorization": "Bearer wrong"}
        )
        assert unauthenticated.status_code == 401, "driftloop must run with auth on"

        # 1. throughput, alternating
        labels = list(urls)
        bursts: dict[str, list[Result]] = {label: [] for label in labels}
        for rnd in range(args.rounds):
            order = labels[rnd % len(labels) :] + labels[: rnd % len(labels)]
            for label in order:
                res = throughput(urls[label], bodies[label], args.connections, args.duration, gen)
                bursts[label].append(res)
                logger.info("round %d %s: %.0f req/s, p99 %.2f ms", rnd, label, res.rps, res.p99_ms)
        tput = {label: _median(runs) for label, runs in bursts.items()}

        # 2. fixed rate
        fixed: dict[str, Result] = {}
        fixed["driftloop features"] = open_loop(
            urls["driftloop"], body, args.rate, args.rate_duration
        )
        fixed["bare features"] = open_loop(urls["bare"], body, args.rate, args.rate_duration)
        wait_health(dl.url, lambda h: bool(h.get("online_features")), 60)
        flight = orjson.dumps(flight_request(1, **mark))
        probe = httpx.post(urls["driftloop"], content=flight, headers=auth)
        if probe.status_code == 200:
            fixed["driftloop flight (online lookup)"] = open_loop(
                urls["driftloop"], flight, args.rate, args.rate_duration
            )
        else:
            logger.warning("flight mode unavailable: %s", probe.text[:200])

        # 3. batches
        batch_sizes = [int(x) for x in args.batches.split(",") if x.strip()]
        batches: dict[str, dict[int, Result]] = {"driftloop": {}, "bare": {}}
        for n in batch_sizes:
            nbody = orjson.dumps(features_request(n, **mark))
            for label in ("driftloop", "bare"):
                throughput(urls[label], nbody, args.connections, 1, gen)
                batches[label][n] = throughput(
                    urls[label], nbody, args.connections, args.batch_duration, gen
                )
        forward = forward_pass(settings, model_uri, max(batch_sizes)) if batch_sizes else None

        # shadow mode (a bootstrapped registry only) and memory with champion + challenger
        memory_note = "champion only"
        if args.bootstrap:
            set_shadow(settings, True)
            wait_health(
                dl.url, lambda h: h.get("challenger") is not None and h.get("mode") == "shadow"
            )
            httpx.post(urls["driftloop"], content=body, headers=auth)
            throughput(urls["driftloop"], body, args.connections, 2, gen)  # the copy's warm-up
            # (the closed-loop warm-up drops copies by design: count the fixed-rate run's only)
            dropped_before = shadow_dropped(dl.url)
            shadow_run = open_loop(urls["driftloop"], body, args.rate, args.rate_duration)
            fixed["driftloop features, shadow 100 %"] = shadow_run
            memory_note = "champion + challenger loaded, shadow traffic served"
            dropped_after = shadow_dropped(dl.url)
            if dropped_before is not None and dropped_after is not None:
                results["shadow_dropped"] = dropped_after - dropped_before
                results["shadow_requests"] = round(shadow_run.rps * args.rate_duration)
        memory = peak_rss_mb(dl_pid)
    lookup = feature_lookup_latency(settings)

    # -- report -----------------------------------------------------------------------------
    ours, floor = tput["driftloop"], tput["bare"]
    theirs = tput.get("mlflow")
    print(
        f"\nmodel {model_uri}; load generator: {ours.generator}; {args.connections} connections; "
        f"{args.rounds} rounds x {args.duration:.0f} s, order rotating; cpus {os.cpu_count()}\n"
    )
    print("1. throughput, 1 complete feature row per request (median of the rounds)")
    print(HEADER)
    print(_row("driftloop (routing, capture, metrics, auth on)", ours))
    print(_row("bare FastAPI v2 endpoint (same parse + model)", floor))
    torch_floor = tput.get("bare-torch")
    if torch_floor is not None:
        print(_row("bare endpoint, torch model (the floor before)", torch_floor))
    if theirs is not None:
        print(_row("mlflow models serve /invocations", theirs))
    for label, runs in bursts.items():
        print(f"   {label} per round: " + ", ".join(f"{r.rps:.0f}" for r in runs))
    print(f"driftloop / bare:   {ours.rps / floor.rps:.2f} (goal >= 0.90)")
    if torch_floor is not None:
        print(
            f"driftloop / bare with the torch model: {ours.rps / torch_floor.rps:.2f} (serving "
            f"runs NumPy; the issue's floor ran torch); bare NumPy / bare torch: "
            f"{floor.rps / torch_floor.rps:.2f}"
        )
    if theirs is not None:
        print(f"driftloop / mlflow: {ours.rps / theirs.rps:.1f}x")
    print(f"\n2. fixed rate {args.rate:.0f} req/s, single-row requests (open loop), ms")
    print(HEADER)
    for label, res in fixed.items():
        print(_row(label, res) + f"  (generator lag {_ms(res.generator_lag_ms)})")
    base_p99 = fixed["driftloop features"].p99_ms
    print(f"goals: features p99 <= 5 ms: {base_p99:.2f}", end="")
    if "driftloop flight (online lookup)" in fixed:
        print(
            f"; online lookup p99 <= 7 ms: {fixed['driftloop flight (online lookup)'].p99_ms:.2f}",
            end="",
        )
    if "driftloop features, shadow 100 %" in fixed:
        added = fixed["driftloop features, shadow 100 %"].p99_ms - base_p99
        print(f"; shadow adds <= 1 ms p99: {added:+.2f}", end="")
        if results.get("shadow_dropped") is not None:
            print(
                f" (copies dropped at serving.shadow_max_pending: "
                f"{results['shadow_dropped']:.0f} of the run's "
                f"{results['shadow_requests']:.0f} requests)",
                end="",
            )
    print()
    if batch_sizes:
        print("\n3. batches (closed loop), rows per request")
        print(HEADER)
        for n in batch_sizes:
            for label in ("driftloop", "bare"):
                print(_row(f"{label}, {n} rows", batches[label][n], n))
        if forward is not None:
            n = max(batch_sizes)
            per_row_us = 1e6 / (batches["driftloop"][n].rps * n)
            fwd_us = forward["forward_s"] * 1e6 / n
            proba_us = forward["predict_proba_s"] * 1e6 / n
            print(
                f"per row at {n} rows: driftloop {per_row_us:.2f} us; bare endpoint "
                f"{1e6 / (batches['bare'][n].rps * n):.2f} us; model predict_proba "
                f"{proba_us:.2f} us; torch forward alone {fwd_us:.2f} us "
                f"({forward['threads']:.0f} torch threads)"
            )
            print(
                f"driftloop per row / forward pass: {per_row_us / fwd_us:.2f}x "
                f"(goal <= 2x); / predict_proba: {per_row_us / proba_us:.2f}x"
            )
            if "numpy_forward_s" in forward:
                np_fwd_us = forward["numpy_forward_s"] * 1e6 / n
                np_proba_us = forward["numpy_predict_proba_s"] * 1e6 / n
                print(
                    f"serving's NumPy runtime at {n} rows: predict_proba {np_proba_us:.2f} us, "
                    f"forward alone {np_fwd_us:.2f} us per row (driftloop per row / NumPy "
                    f"forward: {per_row_us / np_fwd_us:.2f}x)"
                )
    print(
        f"\n4. memory of the driftloop serving process ({memory_note}): peak RSS "
        f"{memory['peak_rss_mb']:.0f} MB (goal <= 400 MB), now {memory['rss_mb']:.0f} MB"
    )
    if lookup:
        print(
            f"\n5. online feature lookup alone (1 row): p50 {lookup['p50_us']:.0f} us, "
            f"p99 {lookup['p99_us']:.0f} us"
        )
    results.update(
        throughput={k: asdict(v) for k, v in tput.items()},
        rounds={k: [asdict(r) for r in v] for k, v in bursts.items()},
        ratio_bare=ours.rps / floor.rps,
        ratio_bare_torch=None if torch_floor is None else ours.rps / torch_floor.rps,
        ratio_mlflow=None if theirs is None else ours.rps / theirs.rps,
        fixed_rate={k: asdict(v) for k, v in fixed.items()},
        batches={k: {n: asdict(r) for n, r in v.items()} for k, v in batches.items()},
        forward_pass=forward,
        memory=memory | {"loaded": memory_note},
        feature_lookup=lookup,
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
