"""``driftloop demo``: replay 2013 through the closed loop on one machine.

1. demo-sized settings (few epochs, small rollout, a cooldown that covers the replay) as
   ``DRIFTLOOP_*`` environment defaults, so every process started from here (worker, serving)
   sees the same settings;
2. the embedded platform: MLflow and Prefect (started together), then the deployments, the
   automation and the worker in the background while steps 3-4 run;
3. the inference API (``python -m serving``) as a background process, started first: it answers
   "not ready" until it finds the champion alias, then loads it (waited for before traffic);
4. ``ingest`` January..``until`` and ``features`` (Prefect flows), ``train`` the first champion on
   January-February (holdout March), in a child process (:mod:`first_steps`: their memory goes
   when it exits, and this process never imports torch);
5. month by month from April: the month's flights (point-in-time feature rows, a sample) go
   through the HTTP API in batches, their labels follow as feedback, the ``monitor`` flow judges
   the month's traffic; drift emits the event, the automation runs ``retrain`` on the worker,
   and while it canaries the challenger the demo keeps sending traffic; then the next month.

Re-runnable: services are reused, the retrain ledger of an earlier replay is archived, and the
first champion of this replay is set by the demo (audited) whatever an earlier run left.
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

from driftloop.embedded.demo.environment import (
    Echo,
    apply_demo_environment,
    finish_platform,
    serving_service,
    start_platform,
)
from driftloop.embedded.demo.timeline import (
    DemoResult,
    MonthRow,
    actions,
    canary_line,
    links,
    monitor_line,
    print_summary,
)
from driftloop.embedded.demo.traffic import Traffic, read_month_frame
from driftloop.embedded.platform import stop_all
from driftloop.embedded.services import (
    Service,
    await_service,
    start_service,
    status_of,
    stop_service,
)
from driftloop.errors import DriftloopError
from driftloop.loop.automations import prefect_client
from driftloop.loop.ledger import archive_ledger, list_retrains
from driftloop.months import month_range, next_month, parse_month
from driftloop.registry.client import registry_snapshot
from driftloop.registry.promotion import reset_champion
from driftloop.schema import EVENT_TIMESTAMP
from driftloop.settings import Settings, ui_logins
from flows.monitor import monitor as monitor_flow

logger = logging.getLogger(__name__)

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


def _retrain_run(event_id: str, settings: Settings) -> Any | None:
    with prefect_client(settings) as client:
        deployment = client.read_deployment_by_name(RETRAIN_DEPLOYMENT)
        runs = client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id]))
        )
    wanted = f"automation:{event_id}"
    found = [r for r in runs if (r.parameters or {}).get("source") == wanted]
    return found[0] if found else None


def _run_state(run_id: Any, settings: Settings) -> Any:
    with prefect_client(settings) as client:
        return client.read_flow_run(run_id).state


#: Rows per canary request: small requests, many of them (the evidence is counted in requests).
CANARY_ROWS_PER_REQUEST = 10


def _wait_for_canary(run_id: Any, traffic: Traffic, settings: Settings) -> bool:
    """Wait until serving routes to a challenger with a weight (True), or the retrain run ends
    first (False: the gate rejected it, or it failed)."""
    while True:
        health = traffic.health()
        if health.get("challenger") is not None and health.get("canary_weight", 0) > 0:
            return True
        state = _run_state(run_id, settings)
        if state is not None and state.is_final():
            return False
        time.sleep(0.5)


def follow_retrain(
    event_id: str,
    settings: Settings,
    traffic: Traffic,
    month: str,
    options: DemoOptions,
    frames: Path,
    echo: Echo,
) -> dict[str, Any]:
    """Wait for the retrain run the automation starts for ``event_id``; once serving canaries its
    challenger, send the month's flights (from ``frames``; seeded order, fixed request ids, so
    the weight split and the evidence are the same every run) with their labels until the
    rollout has decided; returns the retrain's outcome from the ledger (or what Prefect says)."""
    deadline = time.monotonic() + options.retrain_timeout_s
    run = None
    while run is None and time.monotonic() < deadline:
        run = _retrain_run(event_id, settings)
        if run is None:
            time.sleep(1.0)
    if run is None:
        return {"status": "not started", "error": "the automation started no retrain run"}
    # not run.name: Prefect's generated name until the run starts and names itself by what it
    # does (flows/names.py: "retrain 2013-01..2013-03 (drift: ...)")
    echo(f"    automation started a retrain flow run ({run.id}); training, then the canary")
    state = run.state
    if _wait_for_canary(run.id, traffic, settings):
        rows = _canary_frame(month, options, frames)
        echo(f"    canary: sending {month}'s flights, {CANARY_ROWS_PER_REQUEST} per request")
        i = 0
        budget = settings.rollout.max_requests + settings.rollout.look_every
        while time.monotonic() < deadline:
            if i % 20 == 0:
                state = _run_state(run.id, settings)
                if state is not None and state.is_final():
                    break
                health = traffic.health()  # {} when it did not answer: keep sending
                if health and health.get("challenger") is None:
                    break  # promoted or rolled back: the rest of the retrain needs no traffic
            if i >= budget:
                # Past the evidence budget no request can change the decision: trickle (in
                # case some failed) and leave the cores to the rollout and the retrain.
                time.sleep(0.5)
            start = (i * CANARY_ROWS_PER_REQUEST) % max(1, len(rows) - CANARY_ROWS_PER_REQUEST)
            chunk = rows.iloc[start : start + CANARY_ROWS_PER_REQUEST]
            traffic.send_chunk(chunk, f"demo-{options.seed}-{month}-canary-{i:05d}")
            i += 1
    while time.monotonic() < deadline and not (state is not None and state.is_final()):
        time.sleep(1.0)
        state = _run_state(run.id, settings)
    source = f"automation:{event_id}"
    records = [r for r in list_retrains(settings) if r.source == source]
    if records:
        return {"status": records[-1].status, **records[-1].outcome, "flow_run": run.name}
    name = state.name if state is not None else "unknown"
    return {"status": f"flow run {name}", "flow_run": run.name}


def _canary_frame(month: str, options: DemoOptions, frames: Path) -> Any:
    """All of ``month``'s flights in a seeded order (the canary's traffic: no row repeats
    within its evidence budget)."""
    frame = read_month_frame(frames, month)
    return frame.sample(frac=1.0, random_state=options.seed).reset_index(drop=True)


def _month_frame(month: str, options: DemoOptions, frames: Path) -> Any:
    """A seeded sample of ``month``'s flights in time order (the month's traffic)."""
    frame = read_month_frame(frames, month)
    if len(frame) > options.rows_per_month:
        frame = frame.sample(n=options.rows_per_month, random_state=options.seed)
    return frame.sort_values(EVENT_TIMESTAMP).reset_index(drop=True)


def _replay(
    settings: Settings,
    options: DemoOptions,
    until: str,
    first_traffic: str,
    serving: Service,
    frames: Path,
    echo: Echo,
) -> tuple[list[MonthRow], tuple[int, int, int]]:
    """Steps 1-5 of the module docstring; returns the timeline and (retrains, promotions,
    rollbacks)."""
    echo("[1/5] starting MLflow and Prefect (deployments, automation and worker alongside)")
    platform = start_platform(settings, echo)
    archived = archive_ledger(settings)
    if archived:
        echo(f"  earlier replay's retrain ledger archived to {archived}")

    # The inference API starts while the champion trains: it answers "not ready" until its
    # reconciler finds the champion alias, then loads it (step 4 waits for that).
    if status_of(serving, settings).running:
        stop_service(serving, settings)  # fresh env, fresh model load
    start_service(serving, settings, block=False)
    echo(f"[2/5] ingest 2013-01..{until} (DVC) and build features (Feast)")
    # ingest, features and train run in a child process, which prints step 3's line: their
    # memory (DVC, torch, the training data) is returned when it exits (see first_steps)
    from driftloop.embedded.demo import first_steps  # lazy: `python -m` runs it as __main__

    summary = first_steps.run_first_steps(until, FIRST_TRAIN, first_traffic, frames, echo).summary
    reset_champion(str(summary["version"]), settings=settings)
    auc = summary.get("metrics", {}).get("model", {}).get("roc_auc")
    echo(f"  v{summary['version']} is the champion (holdout 2013-03 ROC AUC {auc:.3f})")

    echo("[4/5] waiting for the inference API, the deployments, the automation and the worker")
    await_service(serving, settings)
    finish_platform(platform)

    echo("[5/5] replaying months: traffic -> feedback -> monitor -> (drift) retrain -> canary")
    timeline: list[MonthRow] = []
    traffic = Traffic(settings, options.rows_per_request)
    # serving may still route to an earlier replay's champion until its next reconcile
    if not traffic.await_champion(str(summary["version"])):
        echo(f"  (serving does not route to v{summary['version']} yet: April may miss)")
    retrains = promotions = rollbacks = 0
    try:
        for month in month_range(first_traffic, until):
            row = MonthRow(month=month)
            frame = _month_frame(month, options, frames)
            window_start = datetime.now(UTC)
            row.rows, row.errors = traffic.send(frame, f"{options.seed}-{month}")
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
            row.monitor = monitor_line(out)
            trig = out.get("trigger") or {}
            if trig.get("retrain_requested") and trig.get("event_id"):
                row.actions.append(f"retrain ({', '.join(out['verdict'].get('alarms', []))})")
                echo(f"  {month}: {out['verdict']['status']}, event {trig['event']}")
                outcome = follow_retrain(
                    trig["event_id"], settings, traffic, month, options, frames, echo
                )
                row.actions.extend(actions(outcome))
                row.canary = canary_line(outcome, settings)
                if outcome.get("status") == "finished":
                    retrains += 1
                promotions += outcome.get("rollout") == "promote"
                rollbacks += outcome.get("rollout") == "rollback"
            elif trig.get("event"):
                row.actions.append(f"drift, retrain suppressed ({trig.get('reason')})")
            row.champion = registry_snapshot(settings).champion
            timeline.append(row)
            echo("  " + row.line())
            if not traffic.await_champion(row.champion):
                echo(f"  (serving does not route to v{row.champion} yet: the next month may miss)")
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
    serving = serving_service(settings)
    try:
        # the months' traffic, built by the first steps' child (see first_steps): parquet files
        with tempfile.TemporaryDirectory(prefix="driftloop-demo-traffic-") as frames:
            timeline, counts = _replay(
                settings, options, until, first_traffic, serving, Path(frames), echo
            )
    finally:
        if not options.keep_running:
            stop_service(serving, settings)
            stop_all(settings)
    retrains, promotions, rollbacks = counts
    seconds = time.monotonic() - started
    urls = links(settings)
    print_summary(
        timeline, retrains, promotions, rollbacks, seconds, urls, echo, ui_logins(settings)
    )
    if options.keep_running:
        pid = status_of(serving, settings).pid
        echo(
            f"  still running: serving (pid {pid}), MLflow, Prefect and the worker; "
            "`driftloop down` stops them all"
        )
    return DemoResult(timeline, retrains, promotions, rollbacks, seconds, urls)
