"""``driftloop demo``: replay 2013 through the closed loop on one machine.

1. demo-sized settings (few epochs, small rollout, short cooldown) as ``DRIFTLOOP_*`` environment
   defaults, so every process started from here (worker, serving) sees the same settings;
2. the embedded platform (MLflow, Prefect + deployments + automation, worker);
3. ``ingest`` January..``until`` and ``features`` (Prefect flows), ``train`` the first champion on
   January-February (holdout March);
4. the inference API (``python -m serving``) as a background process;
5. month by month from April: the month's flights (point-in-time feature rows, a sample) go
   through the HTTP API in batches, their labels follow as feedback, the ``monitor`` flow judges
   the month's traffic; drift emits the event, the automation runs ``retrain`` on the worker,
   and while it canaries the challenger the demo keeps sending traffic; then the next month.

Re-runnable: services are reused, the retrain ledger of an earlier replay is archived, and the
first champion of this replay is set by the demo (audited) whatever an earlier run left.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from driftloop.errors import DriftloopError
from driftloop.months import month_range, next_month, parse_month
from driftloop.schema import CATEGORICAL_COLUMNS, EVENT_TIMESTAMP, LABEL, MODEL_INPUT_COLUMNS
from driftloop.settings import Settings, get_settings, use_settings

logger = logging.getLogger(__name__)

Echo = Callable[[str], None]

#: Demo-sized settings (applied only where the environment does not set them already).
DEMO_ENV = {
    "DRIFTLOOP_TRAINING__EPOCHS": "3",
    "DRIFTLOOP_TRAINING__PATIENCE": "1",
    "DRIFTLOOP_ROLLOUT__CANARY_WEIGHT": "50",
    "DRIFTLOOP_ROLLOUT__MIN_REQUESTS": "30",
    "DRIFTLOOP_ROLLOUT__MAX_MINUTES": "2",
    "DRIFTLOOP_ROLLOUT__POLL_S": "1",
    "DRIFTLOOP_ROLLOUT__MIN_LABELED_ROWS": "200",
    "DRIFTLOOP_MONITORING__RETRAIN_COOLDOWN_MINUTES": "1",
    "DRIFTLOOP_MONITORING__DAILY_RETRAIN_BUDGET": "20",
    "DRIFTLOOP_MONITORING__SCHEDULE_MINUTES": "10",
    "DRIFTLOOP_MONITORING__WINDOW_MINUTES": "10",
    "DRIFTLOOP_SERVING__RECONCILE_INTERVAL_S": "2",
    "DRIFTLOOP_SERVING__CAPTURE_FLUSH_S": "0.5",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    # `prefect work-pool ls` is parsed by driftloop.deploy: a wide table keeps names whole.
    "COLUMNS": "250",
}
FIRST_TRAIN = ("2013-01", "2013-02")  # holdout 2013-03
RETRAIN_DEPLOYMENT = "retrain/retrain"


@dataclass
class DemoOptions:
    until: str = "2013-07"
    rows_per_month: int = 2000
    rows_per_request: int = 25
    keep_running: bool = True
    seed: int = 13
    retrain_timeout_s: float = 420.0


@dataclass
class MonthRow:
    """One line of the timeline."""

    month: str
    rows: int = 0
    errors: int = 0
    drift_share: float | None = None
    champion_auc: float | None = None
    status: str = ""
    actions: list[str] = field(default_factory=list)
    champion: str | None = None
    challenger_seen: str | None = None

    def line(self) -> str:
        share = f"{self.drift_share:.2f}" if self.drift_share is not None else "  - "
        auc = f"{self.champion_auc:.3f}" if self.champion_auc is not None else "  -  "
        return (
            f"{self.month}  {self.rows:>5}  {share:>5}  {auc:>6}  v{self.champion or '-':<3}  "
            f"{'; '.join(self.actions) or self.status}"
        )


@dataclass
class DemoResult:
    timeline: list[MonthRow]
    retrains: int
    promotions: int
    rollbacks: int
    seconds: float
    links: dict[str, str]


# ---- setup ---------------------------------------------------------------------------------
def apply_demo_environment() -> Settings:
    """Set the demo-sized defaults in this process's environment and re-read the settings."""
    for key, value in DEMO_ENV.items():
        os.environ.setdefault(key, value)
    use_settings(None)
    settings = get_settings()
    from driftloop.services import service_env

    os.environ.update(service_env(settings))  # PREFECT_API_URL, MLFLOW_TRACKING_URI, results
    return settings


def start_platform(settings: Settings, echo: Echo) -> None:
    """MLflow + Prefect (+ deployments, automation) + a worker that has the demo settings."""
    from driftloop import services

    # A worker left by an earlier `driftloop up` may have other settings: start a fresh one.
    services.stop_service(services.worker_service(settings), settings)
    services.start_all(settings, deploy=True, progress=lambda msg: echo(f"  {msg}"))


def serving_service(settings: Settings) -> Any:
    from driftloop.services import Service
    from serving.process import serving_env

    s = settings.serving
    return Service(
        name="serving",
        port=s.port,
        health_url=f"http://{s.host}:{s.port}/v2/health/ready",
        command=[sys.executable, "-m", "serving"],
        env=serving_env(settings),
        port_setting="DRIFTLOOP_SERVING__PORT",
        startup_timeout_s=180.0,
    )


def reset_champion(version: str, settings: Settings) -> None:
    """Make ``version`` the champion for this replay (drop any challenger), audited."""
    from driftloop.registry.client import (
        CHALLENGER,
        CHAMPION,
        delete_alias,
        registry_snapshot,
        set_alias,
        set_canary_weight,
    )
    from driftloop.registry.promotion import append_audit

    snap = registry_snapshot(settings)
    if snap.champion == version and snap.challenger is None:
        return
    set_alias(CHAMPION, version, settings)
    set_canary_weight(0, settings)
    delete_alias(CHALLENGER, settings)
    append_audit(
        {
            "action": "demo_reset",
            "actor": "demo",
            "model": snap.name,
            "from_version": snap.champion,
            "to_version": version,
            "weight_before": snap.weight,
            "weight_after": 0,
            "reason": "driftloop demo starts its replay from this champion",
            "metrics": {},
        },
        settings,
    )


# ---- traffic -------------------------------------------------------------------------------
def _tensor(name: str, values: list[Any]) -> dict[str, Any]:
    text = name in CATEGORICAL_COLUMNS or name == EVENT_TIMESTAMP
    data = [
        None
        if v is None or (isinstance(v, float) and math.isnan(v))
        else (str(v) if text else float(v))
        for v in values
    ]
    return {
        "name": name,
        "shape": [len(data)],
        "datatype": "BYTES" if text else "FP64",
        "data": data,
    }


def request_body(chunk: Any, request_id: str) -> dict[str, Any]:
    """An OIP v2 body with complete feature rows (and the scheduled departure) of ``chunk``."""
    stamps = [ts.isoformat() for ts in chunk[EVENT_TIMESTAMP]]
    inputs = [_tensor(c, chunk[c].astype(object).tolist()) for c in MODEL_INPUT_COLUMNS]
    inputs.append(_tensor(EVENT_TIMESTAMP, stamps))
    return {"id": request_id, "inputs": inputs}


class Traffic:
    """Sends a month's rows to the inference API and posts their labels as feedback."""

    def __init__(self, settings: Settings, rows_per_request: int) -> None:
        import httpx

        s = settings.serving
        self.url = f"http://{s.host}:{s.port}/v2/models/{settings.mlflow.registered_model}"
        self.client = httpx.Client(timeout=30.0)
        self.size = rows_per_request
        self.sent = 0
        self.errors = 0

    def close(self) -> None:
        self.client.close()

    def send(self, frame: Any, tag: str) -> tuple[int, int]:
        """All rows of ``frame`` in batches, then the labels; returns (rows sent, errors)."""
        sent = errors = 0
        for start in range(0, len(frame), self.size):
            chunk = frame.iloc[start : start + self.size]
            rid = f"demo-{tag}-{start // self.size}-{uuid.uuid4().hex[:6]}"
            ok = self.send_chunk(chunk, rid)
            sent += len(chunk) if ok else 0
            errors += 0 if ok else 1
        return sent, errors

    def send_chunk(self, chunk: Any, request_id: str) -> bool:
        import httpx

        try:
            response = self.client.post(f"{self.url}/infer", json=request_body(chunk, request_id))
            if response.status_code != 200:
                logger.warning(
                    "infer %s: HTTP %s %s", request_id, response.status_code, response.text[:200]
                )
                self.errors += 1
                return False
            labels = [int(v) for v in chunk[LABEL]]
            fb = self.client.post(
                f"{self.url}/feedback", json={"request_id": request_id, "labels": labels}
            )
            if fb.status_code != 200:
                logger.warning("feedback %s: HTTP %s", request_id, fb.status_code)
        except httpx.HTTPError as exc:
            logger.warning("request %s failed: %s", request_id, exc)
            self.errors += 1
            return False
        self.sent += len(chunk)
        return True


# ---- Prefect -------------------------------------------------------------------------------
def _retrain_run(event_id: str, settings: Settings) -> Any | None:
    from driftloop.automations import prefect_client

    with prefect_client(settings) as client:
        deployment = client.read_deployment_by_name(RETRAIN_DEPLOYMENT)
        from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

        runs = client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id]))
        )
    wanted = f"automation:{event_id}"
    found = [r for r in runs if (r.parameters or {}).get("source") == wanted]
    return found[0] if found else None


def _run_state(run_id: Any, settings: Settings) -> Any:
    from driftloop.automations import prefect_client

    with prefect_client(settings) as client:
        return client.read_flow_run(run_id).state


def follow_retrain(
    event_id: str,
    settings: Settings,
    traffic: Traffic,
    frame: Any,
    options: DemoOptions,
    echo: Echo,
) -> dict[str, Any]:
    """Wait for the retrain run the automation starts for ``event_id``, sending the month's
    traffic (with labels) while it runs so the canary gets live requests; returns its outcome
    from the ledger (or what Prefect says)."""
    from driftloop.loop import list_retrains

    deadline = time.monotonic() + options.retrain_timeout_s
    run = None
    while run is None and time.monotonic() < deadline:
        run = _retrain_run(event_id, settings)
        if run is None:
            time.sleep(1.0)
    if run is None:
        return {"status": "not started", "error": "the automation started no retrain run"}
    echo(f"    automation started flow run {run.name} ({run.id}); canary traffic flows meanwhile")
    i = 0
    state = run.state
    rows = frame.sample(frac=1.0, random_state=options.seed).reset_index(drop=True)
    while time.monotonic() < deadline:
        state = _run_state(run.id, settings)
        if state is not None and state.is_final():
            break
        start = (i * traffic.size) % max(1, len(rows) - traffic.size)
        traffic.send_chunk(
            rows.iloc[start : start + traffic.size], f"demo-canary-{uuid.uuid4().hex[:8]}"
        )
        i += 1
        time.sleep(0.15)
    source = f"automation:{event_id}"
    records = [r for r in list_retrains(settings) if r.source == source]
    if records:
        return {"status": records[-1].status, **records[-1].outcome, "flow_run": run.name}
    name = state.name if state is not None else "unknown"
    return {"status": f"flow run {name}", "flow_run": run.name}


# ---- the replay ----------------------------------------------------------------------------
def _month_frame(month: str, options: DemoOptions, settings: Settings) -> Any:
    from driftloop.features import build_training_frame

    frame = build_training_frame([month], settings)
    if len(frame) > options.rows_per_month:
        frame = frame.sample(n=options.rows_per_month, random_state=options.seed)
    return frame.sort_values(EVENT_TIMESTAMP).reset_index(drop=True)


def _actions(outcome: dict[str, Any]) -> list[str]:
    status = outcome.get("status")
    if status == "skipped":
        return [f"retrain skipped ({outcome.get('guard')})"]
    if status not in ("finished",):
        return [f"retrain {status}: {outcome.get('error', '')}"[:120]]
    out = [f"retrain {outcome.get('window')} -> v{outcome.get('version')} {outcome.get('gate')}"]
    rollout = outcome.get("rollout")
    if rollout in ("promote", "rollback"):
        out.append(f"canary -> {rollout}")
        if rollout == "rollback" and outcome.get("rollout_reasons"):
            out.append(str(outcome["rollout_reasons"])[:80])
    elif outcome.get("gate") == "rejected":
        out.append("gate rejected it; serving untouched")
    return out


def _replay(
    settings: Settings,
    options: DemoOptions,
    until: str,
    first_traffic: str,
    serving: Any,
    echo: Echo,
) -> tuple[list[MonthRow], tuple[int, int, int]]:
    """Steps 1-5 of the module docstring; returns the timeline and (retrains, promotions,
    rollbacks)."""
    from driftloop import services

    echo("[1/5] starting MLflow, Prefect (deployments + automation) and a worker")
    start_platform(settings, echo)
    from driftloop.loop import archive_ledger

    archived = archive_ledger(settings)
    if archived:
        echo(f"  earlier replay's retrain ledger archived to {archived}")

    from flows.features import features as features_flow
    from flows.ingest import ingest as ingest_flow
    from flows.monitor import monitor as monitor_flow
    from flows.train import train as train_flow

    echo(f"[2/5] ingest 2013-01..{until} (DVC) and build features (Feast)")
    ingest_flow(start_month="2013-01", end_month=until)
    features_flow()
    echo(f"[3/5] train the first champion on {FIRST_TRAIN[0]}..{FIRST_TRAIN[1]}")
    summary = train_flow(start_month=FIRST_TRAIN[0], end_month=FIRST_TRAIN[1])
    reset_champion(str(summary["version"]), settings)
    auc = summary.get("metrics", {}).get("model", {}).get("roc_auc")
    echo(f"  v{summary['version']} is the champion (holdout 2013-03 ROC AUC {auc:.3f})")

    echo("[4/5] starting the inference API")
    if services.status_of(serving, settings).running:
        services.stop_service(serving, settings)  # fresh env, fresh model load
    services.start_service(serving, settings, lambda msg: echo(f"  {msg}"))

    echo("[5/5] replaying months: traffic -> feedback -> monitor -> (drift) retrain -> canary")
    timeline: list[MonthRow] = []
    traffic = Traffic(settings, options.rows_per_request)
    retrains = promotions = rollbacks = 0
    try:
        for month in month_range(first_traffic, until):
            row = MonthRow(month=month)
            frame = _month_frame(month, options, settings)
            window_start = datetime.now(UTC)
            row.rows, row.errors = traffic.send(frame, month)
            time.sleep(settings.serving.capture_flush_s + 1.0)
            window_end = datetime.now(UTC)
            try:
                out = monitor_flow(start=window_start.isoformat(), end=window_end.isoformat())
            except DriftloopError as exc:
                row.status = f"monitor failed: {exc}"
                timeline.append(row)
                echo("  " + row.line())
                continue
            row.drift_share = out.get("drift_share")
            row.champion_auc = out.get("live_auc")
            row.status = out["verdict"]["status"]
            trig = out.get("trigger") or {}
            if trig.get("retrain_requested") and trig.get("event_id"):
                row.actions.append(f"drift ({', '.join(out['verdict'].get('alarms', []))})")
                echo(f"  {month}: {out['verdict']['status']}, event {trig['event']}")
                outcome = follow_retrain(trig["event_id"], settings, traffic, frame, options, echo)
                row.actions.extend(_actions(outcome))
                if outcome.get("status") == "finished":
                    retrains += 1
                promotions += outcome.get("rollout") == "promote"
                rollbacks += outcome.get("rollout") == "rollback"
            elif trig.get("event"):
                row.actions.append(f"drift, retrain suppressed ({trig.get('reason')})")
            from driftloop.registry.client import registry_snapshot

            row.champion = registry_snapshot(settings).champion
            timeline.append(row)
            echo("  " + row.line())
    finally:
        traffic.close()
    return timeline, (retrains, promotions, rollbacks)


def run_demo(options: DemoOptions | None = None, echo: Echo = print) -> DemoResult:
    """Run the whole replay and print the timeline; see the module docstring."""
    options = options or DemoOptions()
    until = parse_month(options.until)
    first_traffic = next_month(FIRST_TRAIN[1])
    first_traffic = next_month(first_traffic)  # March is the first champion's holdout
    if until < first_traffic:
        raise DriftloopError(f"--until must be {first_traffic} or later, got {until}")
    started = time.monotonic()
    settings = apply_demo_environment()
    echo(f"driftloop demo: state {settings.state}; replaying {first_traffic}..{until}")
    from driftloop import services

    serving = serving_service(settings)
    try:
        timeline, counts = _replay(settings, options, until, first_traffic, serving, echo)
    finally:
        if not options.keep_running:
            services.stop_service(serving, settings)
            services.stop_all(settings)
    retrains, promotions, rollbacks = counts
    seconds = time.monotonic() - started
    links = _links(settings)
    _print_summary(timeline, retrains, promotions, rollbacks, seconds, links, echo)
    if options.keep_running:
        pid = services.status_of(serving, settings).pid
        echo(
            f"  still running: serving (pid {pid}), MLflow, Prefect and the worker; "
            "`driftloop down` stops them all"
        )
    return DemoResult(timeline, retrains, promotions, rollbacks, seconds, links)


def _links(settings: Settings) -> dict[str, str]:
    from driftloop.monitoring.reports import list_reports

    latest = list_reports(settings, limit=1)
    p, m, s = settings.prefect, settings.mlflow, settings.serving
    return {
        "Prefect UI (flow runs: monitor -> retrain -> rollout)": f"http://{p.host}:{p.port}/runs",
        "MLflow UI (versions, aliases, lineage tags)": (
            f"{m.uri.rstrip('/')}/#/models/{m.registered_model}"
        ),
        "latest drift report": str(latest[0].html) if latest else "(none)",
        "inference API docs": f"http://{s.host}:{s.port}/docs",
    }


def _print_summary(
    timeline: list[MonthRow],
    retrains: int,
    promotions: int,
    rollbacks: int,
    seconds: float,
    links: dict[str, str],
    echo: Echo,
) -> None:
    echo("")
    echo("timeline")
    echo("month     rows  drift  AUC     champ actions")
    for row in timeline:
        echo(row.line())
    echo("")
    echo(
        f"{retrains} automatic retrain(s), {promotions} promotion(s), {rollbacks} rollback(s) "
        f"in {seconds / 60:.1f} min"
    )
    for name, url in links.items():
        echo(f"  {name}: {url}")


__all__ = ["DemoOptions", "DemoResult", "run_demo"]
