"""CLI commands of the monitoring area: ``driftloop drift list|show|open|run|retrains``,
``driftloop decisions list|show|replay`` and ``driftloop demo``."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from driftloop.cli.common import progress
from driftloop.loop.ledger import list_retrains

drift_app = typer.Typer(
    help="Drift reports (Evidently): list, show, open in a browser, run the monitor now.",
    no_args_is_help=True,
)
decisions_app = typer.Typer(
    help="Decision records of the monitor and the rollout: list, show, replay from inputs.",
    no_args_is_help=True,
)


@drift_app.command("list")
def list_cmd(
    limit: Annotated[int, typer.Option(help="Show at most this many reports.")] = 20,
) -> None:
    """Saved drift reports, newest first."""
    from driftloop.monitoring.reports import list_reports  # lazy: start-up cost

    reports = list_reports(limit=limit)
    if not reports:
        typer.echo("no drift reports yet (the monitor writes one per run)")
        return
    typer.echo(f"{'id':<28} {'version':>7} {'status':<18} {'share':>5} {'rows':>6} {'AUC':>6}")
    for r in reports:
        auc = r.summary.quality.get("roc_auc")
        typer.echo(
            f"{r.id:<28} {r.model_version:>7} {r.verdict.get('status', '?'):<18} "
            f"{r.summary.drift_share:>5.2f} {r.summary.rows_current:>6} "
            f"{(f'{auc:.3f}' if auc is not None else '-'):>6}"
        )


@drift_app.command("show")
def show_cmd(
    report_id: Annotated[str, typer.Argument(help="Report id (or prefix), or 'latest'.")] = (
        "latest"
    ),
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """One report's verdict, drifted features and quality."""
    from driftloop.monitoring.reports import drifted_text, get_report  # lazy: start-up cost

    r = get_report(report_id)
    if as_json:
        typer.echo(
            json.dumps({**r.header(), "summary": r.summary.to_dict()}, indent=2, default=str)
        )
        return
    s = r.summary
    typer.echo(f"report   {r.id}  ({r.created})")
    typer.echo(f"model    {r.model_name} v{r.model_version}")
    typer.echo(f"window   {r.window.get('start')} .. {r.window.get('end')}")
    typer.echo(f"months   {', '.join(r.window.get('months', [])) or '-'}")
    typer.echo(f"verdict  {r.verdict.get('status')}: {'; '.join(r.verdict.get('reasons', []))}")
    typer.echo(
        f"rows     {s.rows_current} current ({s.rows_labeled} labelled), "
        f"{s.rows_reference} reference"
    )
    typer.echo(f"drift    share {s.drift_share:.2f}: {drifted_text(s)}")
    if s.prediction_drift is not None:
        p = s.prediction_drift
        typer.echo(
            f"predict  {p.method} {p.score:.3f} (threshold {p.threshold:.3f})"
            f"{' DRIFTED' if p.drifted else ''}"
        )
    if s.quality:
        q = ", ".join(f"{k} {v:.3f}" for k, v in s.quality.items())
        typer.echo(f"quality  {q}")
    typer.echo(
        f"missing  {s.missing_share_current:.3f} current, {s.missing_share_reference:.3f} reference"
    )
    typer.echo(f"url      {r.url}")
    if r.links.get("download"):
        typer.echo(f"download {r.links['download']}")
    typer.echo(f"html     {r.html}")


@drift_app.command("open")
def open_cmd(
    report_id: Annotated[str, typer.Argument(help="Report id (or prefix), or 'latest'.")] = (
        "latest"
    ),
) -> None:
    """Print the report's URL (its MLflow UI page) and open it in a browser when one is
    available."""
    from driftloop.monitoring.reports import get_report, open_report  # lazy: start-up cost

    _, opened = open_report(report_id)
    typer.echo(get_report(report_id).url)  # the MLflow UI page, else the file path
    if not opened:
        typer.echo("(no browser available here: open the address above)", err=True)


@drift_app.command("run")
def run_cmd(
    start: Annotated[
        str | None, typer.Option(help="Window start, ISO time (UTC). Default: end - window.")
    ] = None,
    end: Annotated[str | None, typer.Option(help="Window end, ISO time (UTC). Default: now.")] = (
        None
    ),
    version: Annotated[
        str | None, typer.Option(help="Model version to judge. Default: the champion.")
    ] = None,
    trigger: Annotated[
        bool, typer.Option(help="Emit the drift event (starts a retrain via the automation).")
    ] = False,
) -> None:
    """Run the monitor now, in this process (the Prefect deployment 'monitor' does the same on
    its schedule)."""
    from driftloop.loop.decisions import record_monitor  # lazy: start-up cost
    from driftloop.monitoring.monitor import run_monitor  # lazy: start-up cost

    with progress("judging captured traffic"):
        result = run_monitor(start=start, end=end, model_version=version)
    typer.echo(f"{result.verdict.status}: {result.verdict.reason}")
    if result.inputs is not None:
        window = {"start": result.start, "end": result.end, "months": result.months}
        rec = record_monitor(
            result.model_name, result.model_version, window, result.inputs, result.verdict
        )
        typer.echo(f"decision record {rec['id']}")
    if result.report:
        typer.echo(f"report {result.report.id}: {result.report.url}")
    if trigger and result.verdict.retrain:
        from driftloop.loop.trigger import trigger_retrain  # lazy: start-up cost

        decision = trigger_retrain(result)
        typer.echo(f"event {decision.event}: {decision.reason}")


@drift_app.command("retrains")
def retrains_cmd() -> None:
    """The retrain ledger: every automatic or manual retrain and its outcome."""
    records = list_retrains()
    if not records:
        typer.echo("no retrains yet")
        return
    for r in records:
        out = r.outcome
        detail = out.get("guard") or (
            f"v{out.get('version')} {out.get('gate')} rollout={out.get('rollout')} "
            f"champion={out.get('champion')}"
            if out
            else ""
        )
        typer.echo(f"{r.requested_at[:19]} {r.id} {r.window:<18} {r.status:<9} {detail}")


@decisions_app.command("list")
def decisions_list(
    kind: Annotated[str | None, typer.Option(help="Only 'rollout' or 'monitor' records.")] = None,
    limit: Annotated[int, typer.Option(help="Show the last this many.")] = 30,
) -> None:
    """Stored decisions, oldest first: id, kind, versions, decision, reason."""
    from driftloop.loop.decisions import list_decisions  # lazy: start-up cost

    records = list_decisions(kind=kind, limit=limit)
    if not records:
        typer.echo("no decision records yet (the monitor and the rollout write one each)")
        return
    for r in records:
        versions = ",".join(f"{k}={v}" for k, v in r.get("versions", {}).items())
        typer.echo(
            f"{r['id']:<30} {r['kind']:<8} {versions:<26} {r['decision']:<17} "
            f"{str(r.get('reason', ''))[:90]}"
        )


@decisions_app.command("show")
def decisions_show(
    decision_id: Annotated[str, typer.Argument(help="Record id (or a unique prefix).")],
) -> None:
    """One record as JSON: inputs, the settings applied, outputs."""
    from driftloop.loop.decisions import get_decision  # lazy: start-up cost

    typer.echo(json.dumps(get_decision(decision_id), indent=2, default=str))


@decisions_app.command("replay")
def decisions_replay(
    decision_id: Annotated[str, typer.Argument(help="Record id (or a unique prefix).")],
    from_log: Annotated[
        bool,
        typer.Option(
            "--from-log",
            help="Rollouts: re-gather the evidence from the inference log instead of the record.",
        ),
    ] = False,
) -> None:
    """Recompute the decision from its stored inputs and settings (or, with --from-log, from
    the inference log); exit 1 if it differs."""
    from driftloop.loop.decisions import get_decision, replay, replay_from_log  # lazy: start-up

    record = get_decision(decision_id)
    out = replay_from_log(record) if from_log else replay(record)
    typer.echo(json.dumps(out, indent=2, default=str))
    if not out["same"]:
        typer.echo("error: the replayed decision differs from the stored one", err=True)
        raise SystemExit(1)


def demo_cmd(
    until: Annotated[str, typer.Option(help="Last month of traffic to replay (YYYY-MM).")] = (
        "2013-07"
    ),
    rows_per_month: Annotated[
        int, typer.Option(help="Flights sent per month (a sample of the month).")
    ] = 2000,
    keep_running: Annotated[
        bool, typer.Option(help="Leave the services and the server running afterwards.")
    ] = True,
) -> None:
    """Replay 2013 through the closed loop: train a champion on Jan-Feb, serve it, send each
    month's flights, post labels, monitor, let drift trigger retrain -> canary -> promote."""
    import logging
    import os
    import warnings

    # lazy: the CLI's other commands do not need it
    from driftloop.logs import prefect_logging_env, quiet_console

    # The demo prints its own progress and timeline: library INFO logs would bury it. Quiet
    # the console only: the flows it runs in this process keep their logs in the Prefect UI
    # (set before Prefect is imported: its logging config reads the environment).
    for key, value in prefect_logging_env().items():
        os.environ.setdefault(key, value)
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PYTHONWARNINGS", "ignore")  # also for the worker's flow runs
    warnings.filterwarnings("ignore")

    from driftloop.embedded.demo import DemoOptions, run_demo  # lazy: start-up cost

    for name in ("mlflow", "feast"):
        logging.getLogger(name).setLevel(logging.WARNING)
    quiet_console("WARNING")
    run_demo(
        DemoOptions(until=until, rows_per_month=rows_per_month, keep_running=keep_running),
        echo=typer.echo,
    )


def register(app: typer.Typer) -> None:
    """Add this area's commands to the main app."""
    app.add_typer(drift_app, name="drift")
    app.add_typer(decisions_app, name="decisions")
    app.command("demo")(demo_cmd)
