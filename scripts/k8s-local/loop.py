"""The closed loop of `make k8s-e2e`, driven from the host through the platform's own interfaces.

e2e.sh runs this with the host's venv as uid 10001 (the pods' uid), with settings pointing at
the release's servers on 127.0.0.1 (the chart's hostNetwork test mode) and its credentials from
the release's Secrets. Every flow runs in the cluster: this script starts deployments through the
Prefect API (the worker turns each flow run into a Job), sends traffic and labels to the
inference API, and reads the outcome back from MLflow, the retrain ledger, the capture and the
audit log on the state volume (a hostPath PersistentVolume, read here, written by the pods).

Steps (each timed; the summary is one JSON document on --summary):
1. ``ingest``, ``features`` and ``train`` deployments -> each a Job; the first version becomes
   the champion through the gate; serving becomes ready with it.
2. A month of flights through the inference API with their labels while one serving pod is
   deleted: every acknowledged prediction must be in the capture.
3. The ``monitor`` deployment judges that month; drift emits the event, the automation starts a
   ``retrain`` Job; once serving canaries the challenger, that month's flights (with labels) go
   through until the rollout decides; the outcome is read from the ledger, MLflow and the audit
   log. Next month when there was no drift or the challenger was rolled back, until one is
   promoted or the months run out.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from driftloop.data.capture import read_predictions
from driftloop.embedded.demo.replay import (
    CANARY_ROWS_PER_REQUEST,
    DemoOptions,
    _canary_frame,
    _month_frame,
    _wait_for_canary,
)
from driftloop.embedded.demo.traffic import Traffic
from driftloop.loop.automations import prefect_client
from driftloop.loop.ledger import list_retrains
from driftloop.registry import audit
from driftloop.registry.client import registry_snapshot
from driftloop.settings import Settings, get_settings
from serving.examples import flight_request

FIRST_TRAIN = ("2013-01", "2013-02")  # holdout 2013-03; traffic from 2013-04


def log(msg: str) -> None:
    print(f"[loop {datetime.now(UTC):%H:%M:%S}] {msg}", file=sys.stderr, flush=True)


@dataclass
class Driver:
    settings: Settings
    namespace: str
    kubectl: list[str]
    installed_at: float
    phases: list[tuple[str, float]] = field(default_factory=list)
    jobs: dict[str, str] = field(default_factory=dict)
    _t: float = field(default_factory=time.monotonic)

    def phase(self, name: str) -> None:
        now = time.monotonic()
        if self.phases:
            last, _ = self.phases[-1]
            self.phases[-1] = (last, round(now - self._t, 1))
        self.phases.append((name, 0.0))
        self._t = now
        log(f"== {name}")

    def since_install(self) -> float:
        return round(time.time() - self.installed_at, 1)

    # ---- Prefect -------------------------------------------------------------------------
    def run_deployment(self, name: str, parameters: dict[str, Any], timeout_s: float) -> Any:
        """Start deployment ``name`` through the API and wait for its flow run to finish."""
        with prefect_client(self.settings) as client:
            deployment = client.read_deployment_by_name(name)
            run = client.create_flow_run_from_deployment(deployment.id, parameters=parameters)
        log(f"{name}: flow run {run.name} ({run.id})")
        state = self.wait_run(run.id, timeout_s)
        self.record_job(run.id, name)
        if not state.is_completed():
            self.dump_job(run.id)
            raise SystemExit(f"{name}: flow run {run.name} ended {state.name}: {state.message}")
        return run

    def wait_run(self, run_id: Any, timeout_s: float) -> Any:
        deadline = time.monotonic() + timeout_s
        while True:
            with prefect_client(self.settings) as client:
                state = client.read_flow_run(run_id).state
            if state is not None and state.is_final():
                return state
            if time.monotonic() > deadline:
                self.dump_job(run_id)
                raise SystemExit(f"flow run {run_id} not finished after {timeout_s:.0f} s")
            time.sleep(2.0)

    # ---- Kubernetes (observing only) ------------------------------------------------------
    def k(self, *args: str) -> str:
        out = subprocess.run(
            [*self.kubectl, "-n", self.namespace, *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if out.returncode != 0:
            raise SystemExit(f"kubectl {' '.join(args)}: {out.stderr.strip()}")
        return out.stdout

    def job_of(self, run_id: Any) -> str | None:
        jobs = json.loads(self.k("get", "jobs", "-o", "json"))["items"]
        for job in jobs:
            if job["metadata"].get("labels", {}).get("prefect.io/flow-run-id") == str(run_id):
                return str(job["metadata"]["name"])
        return None

    def record_job(self, run_id: Any, what: str) -> None:
        job = self.job_of(run_id)
        if job is None:
            raise SystemExit(
                f"{what}: flow run {run_id} ran in no Job of namespace {self.namespace}"
            )
        self.jobs[what] = job
        log(f"{what}: ran as Job {job}")

    def dump_job(self, run_id: Any) -> None:
        job = self.job_of(run_id)
        if job is not None:
            logs = subprocess.run(
                [*self.kubectl, "-n", self.namespace, "logs", f"job/{job}", "--tail", "60"],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            log(f"last lines of Job {job}:\n{logs.stdout}{logs.stderr}")

    def serving_pods(self, include_terminating: bool = False) -> list[str]:
        """Running serving pods (not those being deleted, unless ``include_terminating``)."""
        pods = json.loads(
            self.k("get", "pods", "-l", "app.kubernetes.io/component=serving", "-o", "json")
        )["items"]
        return [
            p["metadata"]["name"]
            for p in pods
            if p["status"].get("phase") == "Running"
            and (include_terminating or not p["metadata"].get("deletionTimestamp"))
        ]


def send_month(
    driver: Driver, traffic: Traffic, frame: Any, tag: str, delete_pod_at: float | None
) -> dict[str, Any]:
    """All rows of ``frame`` with their labels; a request that fails is sent again under a new id
    (only acknowledged ones count). With ``delete_pod_at`` (a share of the requests), one serving
    pod is deleted at that point, as a node drain would."""
    size = traffic.size
    chunks = [frame.iloc[i : i + size] for i in range(0, len(frame), size)]
    acked: list[str] = []
    failed = 0
    deleted: str | None = None
    deleter: threading.Thread | None = None
    delete_errors: list[str] = []

    def delete(pod: str) -> None:
        try:
            driver.k("delete", "pod", pod, "--wait=true", "--timeout=90s")
        except SystemExit as exc:  # kubectl failed: the run must not claim a deletion
            delete_errors.append(str(exc))

    for n, chunk in enumerate(chunks):
        if delete_pod_at is not None and deleted is None and n >= delete_pod_at * len(chunks):
            deleted = driver.serving_pods()[0]
            log(f"deleting serving pod {deleted} mid-traffic (request {n} of {len(chunks)})")
            deleter = threading.Thread(target=delete, args=(deleted,))
            deleter.start()
        for _attempt in range(20):
            rid = f"k8s-{tag}-{n}-{uuid.uuid4().hex[:8]}"
            if traffic.send_chunk(chunk, rid):
                acked.append(rid)
                break
            failed += 1
            time.sleep(0.2)
        else:
            raise SystemExit(f"request {n} of {tag} failed 20 times")
    if deleter is not None:
        deleter.join(120)
        if delete_errors or deleter.is_alive():
            raise SystemExit(f"deleting serving pod {deleted} failed: {delete_errors}")
        deadline = time.monotonic() + 120
        while deleted in driver.serving_pods(include_terminating=True):
            if time.monotonic() > deadline:
                raise SystemExit(f"serving pod {deleted} still exists 120 s after its deletion")
            time.sleep(2.0)
    return {"requests": len(acked), "retried": failed, "deleted_pod": deleted, "acked": acked}


def check_captured(settings: Settings, acked: list[str], timeout_s: float = 60.0) -> int:
    deadline = time.monotonic() + timeout_s
    while True:
        captured = set(read_predictions(settings, with_labels=False)["request_id"])
        missing = [rid for rid in acked if rid not in captured]
        if not missing:
            return len(acked)
        if time.monotonic() > deadline:
            raise SystemExit(
                f"{len(missing)} of {len(acked)} acknowledged predictions are not in the capture"
                f" (e.g. {missing[:3]})"
            )
        time.sleep(2.0)


def retrain_runs_since(settings: Settings, since: datetime) -> list[Any]:
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

    with prefect_client(settings) as client:
        runs = client.read_flow_runs(
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=["retrain"]))
        )
    found = [r for r in runs if r.created is not None and r.created >= since]
    return sorted(found, key=lambda r: r.created)


def follow_retrain(
    driver: Driver, traffic: Traffic, month: str, options: DemoOptions, since: datetime
) -> dict[str, Any]:
    """Wait for the retrain the automation started after ``since``; feed its canary; return
    its outcome from the ledger."""
    settings = driver.settings
    deadline = time.monotonic() + 180
    runs: list[Any] = []
    while not runs and time.monotonic() < deadline:
        runs = retrain_runs_since(settings, since)
        time.sleep(2.0)
    if not runs:
        return {"status": "no retrain started"}
    run = runs[0]
    source = (run.parameters or {}).get("source", "")
    log(f"automation started retrain flow run {run.name} ({source})")
    labelled = 0
    if _wait_for_canary(run.id, traffic, settings):
        log(f"serving canaries the challenger: sending {month}'s flights with labels")
        rows = _canary_frame(month, options, settings)
        i = 0
        run_deadline = time.monotonic() + 900
        while time.monotonic() < run_deadline:
            if i % 20 == 0:
                with prefect_client(settings) as client:
                    state = client.read_flow_run(run.id).state
                if state is not None and state.is_final():
                    break
            start = (i * CANARY_ROWS_PER_REQUEST) % max(1, len(rows) - CANARY_ROWS_PER_REQUEST)
            chunk = rows.iloc[start : start + CANARY_ROWS_PER_REQUEST]
            if traffic.send_chunk(chunk, f"k8s-{month}-canary-{i:05d}-{uuid.uuid4().hex[:6]}"):
                labelled += 1
            else:
                time.sleep(0.5)  # a replica restarting: do not spin
            i += 1
    state = driver.wait_run(run.id, 900)
    driver.record_job(run.id, f"retrain {month}")
    records = [r for r in list_retrains(settings) if r.source == source]
    outcome = dict(records[-1].outcome) if records else {}
    return {
        "status": records[-1].status if records else f"flow run {state.name}",
        "flow_run": run.name,
        "state": state.name,
        "canary_requests": labelled,
        **outcome,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--kubectl", required=True, help="kubectl command (space separated)")
    parser.add_argument("--installed-at", type=float, required=True, help="epoch of helm install")
    parser.add_argument("--months", default="2013-04,2013-05,2013-06")
    parser.add_argument("--rows-per-month", type=int, default=2000)
    parser.add_argument("--summary", required=True)
    parser.add_argument(
        "--skip-setup",
        action="store_true",
        help="a champion is already served: skip the ingest/features/train runs",
    )
    args = parser.parse_args()
    settings = get_settings()
    months = args.months.split(",")
    driver = Driver(settings, args.namespace, args.kubectl.split(), args.installed_at)
    options = DemoOptions(rows_per_month=args.rows_per_month)
    summary: dict[str, Any] = {"months": []}

    driver.phase("ingest, features, train (flow runs as Jobs)")
    if not args.skip_setup:
        setup(driver, months)
    driver.phase("serving ready with the champion")
    traffic = Traffic(settings, rows_per_request=25)
    return loop(driver, traffic, months, options, summary, args.summary)


def setup(driver: Driver, months: list[str]) -> None:
    driver.run_deployment("ingest/ingest", {"start_month": "2013-01", "end_month": months[-1]}, 900)
    driver.run_deployment("features/features", {}, 900)
    driver.run_deployment(
        "train/train", {"start_month": FIRST_TRAIN[0], "end_month": FIRST_TRAIN[1]}, 1200
    )


def loop(
    driver: Driver,
    traffic: Traffic,
    months: list[str],
    options: DemoOptions,
    summary: dict[str, Any],
    summary_path: str,
) -> int:
    """Steps 2 and 3 of the module docstring (the champion is being served or about to be)."""
    settings = driver.settings
    deadline = time.monotonic() + 300
    health: dict[str, Any] = {}
    while not health.get("champion"):
        if time.monotonic() > deadline:
            raise SystemExit(f"serving has no champion after 300 s: {health}")
        time.sleep(2.0)
        health = traffic.health()
    summary["first_champion"] = {
        "version": health["champion"],
        "s_since_install": driver.since_install(),
    }
    log(
        f"serving answers with champion v{health['champion']}"
        f" ({driver.since_install()} s after install)"
    )
    # Flight-mode request: features from the online store (Redis, materialized by the features Job).
    flight = traffic.client.post(
        f"{traffic.url}/infer", json=flight_request(2), headers=traffic.predict_auth
    )
    if flight.status_code != 200:
        raise SystemExit(f"flight-mode inference: HTTP {flight.status_code} {flight.text[:300]}")
    summary["flight_mode"] = "ok"

    promoted = False
    try:
        for index, month in enumerate(months):
            driver.phase(
                f"traffic {month} (a serving pod deleted mid-traffic)"
                if index == 0
                else f"traffic {month}"
            )
            frame = _month_frame(month, options, settings)
            window_start = datetime.now(UTC)
            sent = send_month(driver, traffic, frame, month, 0.4 if index == 0 else None)
            time.sleep(settings.serving.capture_flush_s + 1.0)
            window_end = datetime.now(UTC)
            kept = check_captured(settings, sent.pop("acked"))
            row: dict[str, Any] = {"month": month, **sent, "acknowledged_in_capture": kept}
            log(f"{month}: {kept} acknowledged requests, all in the capture ({sent})")

            driver.phase(f"monitor {month} -> automation -> retrain Job -> canary")
            since = datetime.now(UTC)
            driver.run_deployment(
                "monitor/monitor",
                {"start": window_start.isoformat(), "end": window_end.isoformat()},
                600,
            )
            outcome = follow_retrain(driver, traffic, month, options, since)
            row["retrain"] = outcome
            summary["months"].append(row)
            log(f"{month}: {json.dumps(outcome, default=str)[:600]}")
            if outcome.get("rollout") == "promote":
                summary["first_promotion"] = {
                    "month": month,
                    "version": outcome.get("version") or outcome.get("challenger"),
                    "s_since_install": driver.since_install(),
                }
                promoted = True
                break
    finally:
        traffic.close()

    driver.phase("read back: MLflow, audit log")
    snap = registry_snapshot(settings)
    summary["registry"] = {
        "champion": snap.champion,
        "challenger": snap.challenger,
        "weight": snap.weight,
    }
    records = audit.read_records(settings)
    summary["audit"] = [
        {k: r.get(k) for k in ("at", "action", "actor", "reason", "after")} for r in records[-6:]
    ]
    anchor, unanchored = audit.read_anchor(settings)
    check = audit.verify(settings, anchor=anchor, unanchored=unanchored)
    summary["audit_chain"] = {
        "intact": check.intact,
        "records": check.records,
        "anchored": check.anchored,
    }
    if not check.intact:
        raise SystemExit(f"audit chain broken at line {check.line}: {check.problem}")
    driver.phase("")
    summary["phases"] = [p for p in driver.phases if p[0]]
    summary["jobs"] = driver.jobs
    summary["promoted"] = promoted
    with open(summary_path, "w") as f:
        json.dump(summary, f, indent=2, default=str)
    if not any(
        m.get("retrain", {}).get("rollout") in ("promote", "rollback") for m in summary["months"]
    ):
        raise SystemExit("no canary was judged: the loop did not close")
    return 0


if __name__ == "__main__":
    sys.exit(main())
