"""Loop benchmark: ``driftloop demo`` end to end, with the time per phase and the peak memory of
the whole embedded platform.

The demo runs in this process (as ``driftloop demo`` does) in a fresh temporary state folder on
ports the OS reports free, so nothing of an earlier run is reused: MLflow, Prefect, the worker and
the inference API start cold, the data is ingested and the features built from scratch. Phases
are timed by wrapping the demo's own steps (no change to what it does):

- ``imports``: importing the demo (Prefect, MLflow, the flows);
- ``service start``: MLflow + Prefect + deployments/automation + worker;
- ``ingest``, ``features``, ``train`` (the first champion), ``serving start``; the first three
  run in a child process (``driftloop.embedded.demo.first_steps``), which reports their seconds:
  ``first steps: child start`` is the rest of its time (starting Python, imports);
- ``traffic``: the months' flights through the inference API with their labels;
- ``monitor``: the monitor flow per month (drift report, verdict, trigger);
- ``retrain (automation)``: from the drift event until the retrain run the automation starts
  ends, broken down afterwards from the Prefect API (flow and task runs of the retrain: its
  ingest, features, train = fit + gate, rollout = canary until the decision, promote);
- ``other``: the rest (capture flush waits, registry reads, the summary).

Memory: a thread samples this process and every process below it (the services are started
from here, flow runs below the worker) every ``--sample-s`` seconds with psutil and keeps the
peak of the summed RSS (shared pages of forked processes count once per process, so the sum
overstates a little) and each process kind's own peak.

The decisions (drift alarm per month, retrain, gate, rollout outcome, champion) are printed so
two runs can be compared: a faster loop must reach the same ones.

Usage::

    nice -n 10 .venv/bin/python benchmarks/loop.py               # ~3-7 min on 2 cores
    .venv/bin/python benchmarks/loop.py --json loop.json         # every number
    .venv/bin/python benchmarks/loop.py --keep                   # leave the services running
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]

# Run as a script, this folder comes first on sys.path and its serving.py would shadow the
# `serving` package: the project root goes there instead.
_ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _ROOT / "benchmarks"]
sys.path.insert(0, str(_ROOT))

MB = 1024 * 1024


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Phases:
    """Wall seconds per named phase (a phase may be entered many times)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        #: how much this (the demo's) process's RSS grew during the phase, summed over its calls:
        #: what the phase left held in the process
        self.rss_growth: dict[str, int] = defaultdict(int)
        self.process = psutil.Process(os.getpid())

    @contextmanager
    def timed(self, name: str) -> Iterator[None]:
        t0, rss0 = time.perf_counter(), self.process.memory_info().rss
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - t0
            self.calls[name] += 1
            self.rss_growth[name] += self.process.memory_info().rss - rss0

    def add(self, name: str, seconds: float) -> None:
        """A phase timed elsewhere (in a child process)."""
        self.seconds[name] += seconds
        self.calls[name] += 1

    def wrap(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self.timed(name):
                return fn(*args, **kwargs)

        return wrapper


def _kind(proc: psutil.Process) -> str:
    """A short name for what a process is (for the per-kind peaks)."""
    try:
        cmd = " ".join(proc.cmdline())
    except (psutil.Error, OSError):
        return "?"
    for needle, kind in (
        ("-m serving", "serving"),
        ("mlflow server", "mlflow server"),
        ("mlflow.server", "mlflow server"),
        ("embedded.mlflow_server", "mlflow server"),  # its launcher, before it execs the server
        ("huey", "mlflow server"),
        ("prefect server", "prefect server"),
        ("prefect worker", "worker"),
        ("prefect.engine", "flow run"),
        ("benchmarks/loop.py", "demo (this process)"),
        ("demo.first_steps", "demo first steps (child)"),
    ):
        if needle in cmd:
            return kind
    return str(proc.name())


class MemorySampler(threading.Thread):
    """Peak summed RSS of this process and its descendants, sampled every ``period`` s."""

    def __init__(self, period: float) -> None:
        super().__init__(daemon=True)
        self.period = period
        self.peak = 0
        self.peak_at = 0.0
        self.peak_processes = 0
        self.by_kind: dict[str, int] = defaultdict(int)
        #: RSS per process kind in the sample of the peak (what the peak is made of)
        self.at_peak: dict[str, int] = {}
        self.samples = 0
        #: the 1-minute load average at each sample: other work on the machine slows every phase
        self.loads: list[float] = []
        self._halt = threading.Event()
        self._root = psutil.Process(os.getpid())
        self._t0 = time.monotonic()

    def run(self) -> None:
        while not self._halt.is_set():
            self.sample()
            self._halt.wait(self.period)

    def sample(self) -> None:
        try:
            procs = [self._root, *self._root.children(recursive=True)]
        except psutil.Error:
            return
        total, kinds = 0, defaultdict[str, int](int)
        for proc in procs:
            try:
                rss = proc.memory_info().rss
            except (psutil.Error, OSError):
                continue
            total += rss
            kinds[_kind(proc)] += rss
        self.samples += 1
        self.loads.append(os.getloadavg()[0])
        if total > self.peak:
            self.peak, self.peak_at, self.peak_processes = (
                total,
                time.monotonic() - self._t0,
                len(procs),
            )
            self.at_peak = dict(kinds)
        for kind, rss in kinds.items():
            self.by_kind[kind] = max(self.by_kind[kind], rss)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)


def _demo_environment(state: Path) -> None:
    """What ``driftloop demo`` sets, plus a private state folder and free ports."""
    os.environ["DRIFTLOOP_STATE_DIR"] = str(state)
    os.environ["DRIFTLOOP_MLFLOW__PORT"] = str(free_port())
    os.environ["DRIFTLOOP_PREFECT__PORT"] = str(free_port())
    os.environ["DRIFTLOOP_SERVING__PORT"] = str(free_port())
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    warnings.filterwarnings("ignore")
    logging.getLogger().setLevel(logging.WARNING)
    for name in ("prefect", "driftloop", "mlflow", "feast"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _instrument(phases: Phases) -> None:
    """Wrap the demo's steps (module globals of the replay) with timers."""
    from driftloop.embedded.demo import replay, traffic

    try:
        from driftloop.embedded.demo import first_steps
    except ImportError:  # a commit from before the first steps ran in a child process
        first_steps = None  # type: ignore[assignment]

    def first_steps_timed(*args: Any, **kwargs: Any) -> Any:
        """Ingest, features and the first training run in a child process, which reports each
        flow's seconds; the rest of the child's time is its start-up (imports)."""
        t0, rss0 = time.perf_counter(), phases.process.memory_info().rss
        out = run_first_steps(*args, **kwargs)
        total = time.perf_counter() - t0
        for step, phase in (
            ("ingest", "ingest"),
            ("features", "features"),
            ("train", "train (first champion)"),
            ("traffic rows", "traffic"),
        ):
            phases.add(phase, out.seconds.get(step, 0.0))
        phases.add("first steps: child start", max(0.0, total - sum(out.seconds.values())))
        phases.rss_growth["first steps: child start"] += phases.process.memory_info().rss - rss0
        return out

    if first_steps is not None:
        run_first_steps = first_steps.run_first_steps
        first_steps.run_first_steps = first_steps_timed
    wrapped = (
        ("start_platform", "service start"),
        # before the first steps moved to a child process (kept to compare older commits)
        ("ingest_flow", "ingest"),
        ("features_flow", "features"),
        ("train_flow", "train (first champion)"),
        ("start_service", "serving start"),
        # started alongside the steps above: what is left of their start-up when needed
        ("await_service", "serving start"),
        ("finish_platform", "deploy + worker (wait)"),
        ("monitor_flow", "monitor"),
        ("follow_retrain", "retrain (automation)"),
        ("_month_frame", "traffic"),
    )
    for name, phase in wrapped:
        if hasattr(replay, name):
            setattr(replay, name, phases.wrap(phase, getattr(replay, name)))
    traffic.Traffic.send = phases.wrap("traffic", traffic.Traffic.send)  # type: ignore[method-assign]


def _seconds(run: Any) -> float | None:
    if run.start_time is None or run.end_time is None:
        return None
    return float((run.end_time - run.start_time).total_seconds())


def retrain_breakdown(settings: Any) -> list[dict[str, Any]]:
    """Per retrain flow run the automation started: its queue wait (created -> started) and the
    seconds of its subflows and tasks, from the Prefect API."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from driftloop.loop.automations import prefect_client

    out: list[dict[str, Any]] = []
    with prefect_client(settings) as client:
        flows = {f.id: f.name for f in client.read_flows()}
        runs = client.read_flow_runs()
        for run in sorted(runs, key=lambda r: r.created or r.expected_start_time):
            if flows.get(run.flow_id) != "retrain":
                continue
            if (
                run.start_time is None
                and run.state_type is not None
                and run.state_type.value == "SCHEDULED"
            ):
                continue  # the weekly retrain deployment's upcoming runs (Prefect keeps 3 ahead)
            item: dict[str, Any] = {
                "flow_run": run.name,
                "state": run.state_name,
                "queued_s": (
                    (run.start_time - run.created).total_seconds()
                    if run.start_time and run.created
                    else None
                ),
                "total_s": _seconds(run),
                "steps": [],
            }
            tasks = client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id]))
            )
            children = [r for r in runs if r.parent_task_run_id in {t.id for t in tasks}]
            for task in sorted(tasks, key=lambda t: t.start_time or t.expected_start_time):
                sub = [c for c in children if c.parent_task_run_id == task.id]
                if sub:
                    name = f"{flows.get(sub[0].flow_id, '?')} (subflow)"
                    sub_tasks = client.read_task_runs(
                        flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[sub[0].id]))
                    )
                    detail = {
                        t.task_key.rsplit("-", 1)[0] if t.task_key else t.name: _seconds(t)
                        for t in sub_tasks
                    }
                    item["steps"].append(
                        {"step": name, "seconds": _seconds(sub[0]), "tasks": detail}
                    )
                else:
                    item["steps"].append({"step": task.name, "seconds": _seconds(task)})
            out.append(item)
    return out


def training_throughput(settings: Any) -> list[tuple[str, float]]:
    """(run name, mean_samples_per_s) of every training run the demo logged to MLflow."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(settings.mlflow.uri)
    ids = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(ids, filter_string="metrics.mean_samples_per_s > 0")
    return [
        (r.info.run_name or r.info.run_id, float(r.data.metrics["mean_samples_per_s"]))
        for r in sorted(runs, key=lambda r: r.info.start_time)
    ]


def _fmt_s(value: float | None) -> str:
    return f"{value:7.1f} s" if value is not None else "      - "


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--until", default="2013-07", help="last month replayed (as the demo)")
    parser.add_argument("--rows-per-month", type=int, default=2000)
    parser.add_argument("--state", type=Path, help="state folder (default: a fresh temporary one)")
    parser.add_argument("--keep", action="store_true", help="leave the services running")
    parser.add_argument("--sample-s", type=float, default=0.5, help="memory sampling period")
    parser.add_argument("--json", type=Path, help="write every number here")
    args = parser.parse_args(argv)

    state = args.state or Path(tempfile.mkdtemp(prefix="driftloop-loop-bench-"))
    _demo_environment(state)
    sampler = MemorySampler(args.sample_s)
    sampler.start()
    phases = Phases()
    started = time.perf_counter()
    with phases.timed("imports"):
        from driftloop.embedded.demo import DemoOptions, run_demo
        from driftloop.embedded.platform import stop_all
        from driftloop.settings import get_settings

    _instrument(phases)
    result = None
    breakdown: list[dict[str, Any]] = []
    throughput: list[tuple[str, float]] = []
    try:
        result = run_demo(
            DemoOptions(until=args.until, rows_per_month=args.rows_per_month, keep_running=True),
            echo=lambda line: print(f"[{time.perf_counter() - started:6.1f}s] {line}", flush=True),
        )
        try:
            breakdown = retrain_breakdown(get_settings())
        except Exception as exc:  # the breakdown is extra: report, keep the totals
            print(f"(no retrain breakdown from Prefect: {type(exc).__name__}: {exc})")
        try:
            throughput = training_throughput(get_settings())
        except Exception as exc:  # extra as well
            print(f"(no training throughput from MLflow: {type(exc).__name__}: {exc})")
    finally:
        total = time.perf_counter() - started
        sampler.sample()
        sampler.stop()
        if not args.keep:
            stop_all(get_settings())
            if args.state is None:
                shutil.rmtree(state, ignore_errors=True)

    named = sum(phases.seconds.values())
    phases.seconds["other"] = max(0.0, total - named)
    print("\n== loop benchmark: driftloop demo ==")
    loads = sampler.loads or [0.0]
    print(
        f"cpus: {os.cpu_count()}  python: {sys.version.split()[0]}  state: {state}  "
        f"load average during the run: mean {sum(loads) / len(loads):.1f}, max {max(loads):.1f}"
    )
    print(f"{'phase':<24} {'seconds':>9} {'share':>6} {'calls':>5}  demo process RSS growth (MB)")
    for name, secs in phases.seconds.items():
        calls = phases.calls.get(name, 0)
        grew = f"{phases.rss_growth[name] / MB:+,.0f}" if name in phases.rss_growth else ""
        print(f"{name:<24} {secs:9.1f} {secs / total:6.1%} {calls or '':>5}  {grew}")
    print(f"{'total':<24} {total:9.1f}")
    for item in breakdown:
        print(
            f"\nretrain {item['flow_run']} ({item['state']}): queued {_fmt_s(item['queued_s'])}, "
            f"ran {_fmt_s(item['total_s'])}"
        )
        for step in item["steps"]:
            print(f"  {step['step']:<30} {_fmt_s(step['seconds'])}")
            for task, secs in (step.get("tasks") or {}).items():
                print(f"      {task:<26} {_fmt_s(secs)}")
    for name, speed in throughput:
        print(f"training run {name}: {speed:,.0f} samples/s (MLflow mean_samples_per_s)")
    print(
        f"\npeak RSS, all processes together: {sampler.peak / MB:,.0f} MB "
        f"({sampler.peak_processes} processes, at {sampler.peak_at:.0f} s; "
        f"{sampler.samples} samples every {args.sample_s:g} s)"
    )
    print(f"  {'process kind':<27} {'own peak':>8} {'at the peak':>12}")
    for kind, rss in sorted(sampler.by_kind.items(), key=lambda kv: -kv[1]):
        print(f"  {kind:<27} {rss / MB:5,.0f} MB {sampler.at_peak.get(kind, 0) / MB:9,.0f} MB")
    decisions: list[dict[str, Any]] = []
    if result is not None:
        print("\ndecisions (compare across runs):")
        for row in result.timeline:
            decisions.append(
                {
                    "month": row.month,
                    "status": row.status,
                    "actions": row.actions,
                    "champion": row.champion,
                }
            )
            print(
                f"  {row.month}: {row.status:<10} {'; '.join(row.actions) or '-'}  "
                f"champion v{row.champion}"
            )
        print(
            f"  retrains {result.retrains}, promotions {result.promotions}, "
            f"rollbacks {result.rollbacks}"
        )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "total_s": total,
                    "phases": dict(phases.seconds),
                    "retrains": breakdown,
                    "training_samples_per_s": throughput,
                    "peak_rss_mb": sampler.peak / MB,
                    "load_average_mean": sum(loads) / len(loads),
                    "peak_rss_by_kind_mb": {k: v / MB for k, v in sampler.by_kind.items()},
                    "rss_at_peak_by_kind_mb": {k: v / MB for k, v in sampler.at_peak.items()},
                    "demo_process_rss_growth_mb": {k: v / MB for k, v in phases.rss_growth.items()},
                    "decisions": decisions,
                },
                indent=2,
                default=str,
            )
        )
    return 0 if result is not None else 1


if __name__ == "__main__":
    sys.exit(main())
