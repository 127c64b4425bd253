"""The demo's first steps, ``ingest`` -> ``features`` -> ``train`` (the first champion), and the
replay's traffic (each month's point-in-time feature rows), run in a child process.

They are the demo's heaviest steps in memory: DVC and the month files (~300 MB), torch and the
training data (~370 MB), a Feast retrieval (~450 MB). Run in the demo's own process, that memory
stayed held for the whole replay (CPython and glibc seldom hand freed memory back to the system),
beside the retrain's flow run, MLflow, Prefect and serving: the demo process reached 1.2 GB of the
platform's 3.6 GB peak. In a child it is returned when the child exits, and the demo process
(sending traffic, the monitor, following the retrain) imports neither torch nor DVC.

They are the same Prefect flows, called the same way: each is a flow run of its own in the Prefect
UI. The child inherits the demo's environment (the platform's addresses and credentials, the
demo-sized settings), prints its progress on stdout (the demo echoes it), writes the months'
traffic as parquet files into a folder the demo names, and hands back the training summary and
each step's seconds as JSON in a file.

Run as ``python -m driftloop.embedded.demo.first_steps --until YYYY-MM --train-from YYYY-MM
--train-to YYYY-MM --traffic-from YYYY-MM --frames DIR --result PATH`` (the demo does this; it
is not a user command).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from driftloop.errors import DriftloopError
from driftloop.logs import quiet_console
from driftloop.months import month_range
from driftloop.settings import get_settings, project_root


@dataclass(frozen=True)
class FirstSteps:
    """What the child hands back: the ``train`` flow's summary and each flow's wall seconds."""

    summary: dict[str, Any]
    seconds: dict[str, float]


def run_first_steps(
    until: str,
    train_window: tuple[str, str],
    traffic_from: str,
    frames: Path,
    echo: Callable[[str], None],
) -> FirstSteps:
    """Ingest January..``until``, build the features, train the first champion on
    ``train_window``, then write the traffic of ``traffic_from``..``until`` into ``frames``, in a
    child process; its output lines go to ``echo``. Raises :class:`DriftloopError` naming the
    step's error when the child fails."""
    with tempfile.TemporaryDirectory(prefix="driftloop-demo-") as tmp:
        result = Path(tmp) / "result.json"
        command = [
            sys.executable,
            "-P",  # not the current folder first on sys.path: its flows/ would shadow ours
            "-m",
            __name__,
            "--until",
            until,
            "--train-from",
            train_window[0],
            "--train-to",
            train_window[1],
            "--traffic-from",
            traffic_from,
            "--frames",
            str(frames),
            "--result",
            str(result),
        ]
        # stderr is the terminal's (warnings, a traceback if a step crashes); stdout is echoed
        # unbuffered: its lines reach the demo's output as they are printed, not in blocks
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with subprocess.Popen(
            command, stdout=subprocess.PIPE, text=True, bufsize=1, env=env, cwd=project_root()
        ) as child:
            try:
                assert child.stdout is not None  # stdout=PIPE above
                for line in child.stdout:
                    echo(line.rstrip("\n"))
                code = child.wait()
            except BaseException:  # Ctrl-C (the child got it too), or echo failed
                try:  # let it close its flow and MLflow runs, then make sure it is gone
                    child.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    child.kill()
                raise
        data = json.loads(result.read_text()) if result.is_file() else {}
    if code != 0 or "summary" not in data:
        reason = data.get("error") or f"the child process exited with code {code}"
        raise DriftloopError(f"the demo's first steps (ingest, features, train) failed: {reason}")
    return FirstSteps(summary=data["summary"], seconds=data["seconds"])


def _quiet() -> None:
    """The console as quiet as the demo's (the flows' logs still reach the Prefect UI)."""
    for name in ("mlflow", "feast"):
        logging.getLogger(name).setLevel(logging.WARNING)
    quiet_console("WARNING")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--until", required=True)
    parser.add_argument("--train-from", required=True)
    parser.add_argument("--train-to", required=True)
    parser.add_argument("--traffic-from", required=True)
    parser.add_argument("--frames", type=Path, required=True)
    parser.add_argument("--result", type=Path, required=True)
    args = parser.parse_args(argv)
    seconds: dict[str, float] = {}
    try:
        # Prefect reads its settings on import: these come after the environment is read
        from driftloop.embedded.demo.traffic import write_month_frames  # lazy: pandas, httpx
        from flows.features import features as features_flow  # lazy: Prefect settings
        from flows.ingest import ingest as ingest_flow  # lazy: Prefect settings
        from flows.train import train as train_flow  # lazy: Prefect settings, torch

        _quiet()
        t0 = time.perf_counter()
        ingest_flow(start_month="2013-01", end_month=args.until)
        seconds["ingest"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        features_flow()
        seconds["features"] = time.perf_counter() - t0
        sys.stdout.write(f"[3/5] train the first champion on {args.train_from}..{args.train_to}\n")
        sys.stdout.flush()
        t0 = time.perf_counter()
        summary = train_flow(start_month=args.train_from, end_month=args.train_to)
        seconds["train"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        write_month_frames(args.frames, month_range(args.traffic_from, args.until), get_settings())
        seconds["traffic rows"] = time.perf_counter() - t0
    except DriftloopError as exc:  # bad input or a refused step: one line, as the CLI prints
        message = str(exc)
    except Exception as exc:  # a crash: the traceback to stderr, one line to the demo
        traceback.print_exc()
        message = f"{type(exc).__name__}: {exc}"
    else:
        args.result.write_text(json.dumps({"summary": summary, "seconds": seconds}, default=str))
        return 0
    args.result.write_text(json.dumps({"error": message, "seconds": seconds}))
    return 1


if __name__ == "__main__":
    sys.exit(main())
