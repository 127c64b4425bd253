"""Prefect flow ``monitor``: captured traffic vs the champion's reference -> Evidently report ->
verdict -> (guards) -> event ``driftloop.drift.detected`` that the automation turns into a
``retrain`` run. The work is :func:`driftloop.monitoring.monitor.run_monitor` and
:func:`driftloop.loop.trigger.trigger_retrain`; this wrapper adds the Prefect artifacts
(summary table and a markdown link to the HTML report) shown on the flow run in the UI.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NONE

from driftloop.errors import NotFoundError
from driftloop.loop.decisions import record_monitor
from driftloop.loop.rollout import reset_stale_rollout
from driftloop.loop.trigger import trigger_retrain
from driftloop.monitoring.monitor import run_monitor
from driftloop.monitoring.reports import drifted_text
from flows.names import monitor_outcome_name, monitor_run_name, rename_run


@task(name="judge-window", cache_policy=NONE)
def judge_task(start: str | None, end: str | None, model_version: str | None) -> Any:
    """Run the drift report on the window and save it (disk + MLflow)."""
    return run_monitor(start=start, end=end, model_version=model_version)


@task(name="reset-stale-rollout", cache_policy=NONE)
def stale_rollout_task() -> dict[str, Any] | None:
    """A rollout left open past its budget and grace (its flow crashed) is rolled back."""
    return reset_stale_rollout(actor="monitor")


@task(name="trigger-retrain", retries=2, retry_delay_seconds=3, cache_policy=NONE)
def trigger_task(result: Any, emit: bool) -> Any:
    """Check the guards and emit the drift (or suppressed) event."""
    return trigger_retrain(result, emit=emit)


def _table(result: Any) -> list[dict[str, Any]]:
    report = result.report
    rows = []
    for name, col in sorted(report.summary.columns.items()):
        rows.append(
            {
                "column": name,
                "method": col.method,
                "score": round(col.score, 4),
                "threshold": round(col.threshold, 4),
                "drifted": col.drifted,
            }
        )
    pred = report.summary.prediction_drift
    if pred is not None:
        rows.append(
            {
                "column": f"{pred.column} (prediction)",
                "method": pred.method,
                "score": round(pred.score, 4),
                "threshold": round(pred.threshold, 4),
                "drifted": pred.drifted,
            }
        )
    return rows


def _report_line(result: Any) -> str:
    """Where the HTML report opens: its MLflow UI page (HTTP, works from any browser that
    reaches MLflow), not a path that exists only where the flow ran."""
    r = result.report
    links = r.links
    if links.get("report") and result.mlflow_logged:
        return (
            f"Report: [{r.id} in MLflow]({links['report']}) "
            f"([download drift.html]({links['download']})); "
            f"[{result.model_name} v{result.model_version}]({links['version']}); "
            f"`driftloop drift open {r.id}`"
        )
    return (
        f"Report: not in MLflow (logging it failed or the version has no run: see this run's "
        f"logs); on the flow-run host at `{r.html}` (`driftloop drift open {r.id}`)"
    )


def _markdown(result: Any, decision: Any) -> str:
    r = result.report
    s = r.summary if r else None
    lines = [
        f"## Drift of {result.model_name} v{result.model_version}: **{result.verdict.status}**",
        "",
        f"Window {result.start} .. {result.end} ({result.rows} captured rows; "
        f"months {', '.join(result.months) or '-'})",
        "",
        f"Verdict: {result.verdict.reason}",
    ]
    if result.verdict.info:
        lines += ["", "Reported, not acted on:", *(f"- {i}" for i in result.verdict.info)]
    if result.reconciliation is not None:
        rec = result.reconciliation
        lines += [
            "",
            f"Label-free estimate vs realised ROC AUC: {rec['estimated']:.3f} vs "
            f"{rec['observed']:.3f} (error {rec['error']:+.3f}, "
            f"{'inside' if rec['covered'] else 'outside'} the estimate's interval)",
        ]
    if s is not None:
        auc = f"{result.live_auc:.3f}" if result.live_auc is not None else "n/a (no labels)"
        lines += [
            "",
            "| drift share | drifted features | live ROC AUC | labelled rows | missing share |",
            "|---:|---|---:|---:|---:|",
            f"| {s.drift_share:.2f} | {drifted_text(s)} | {auc} "
            f"| {s.rows_labeled} | {s.missing_share_current:.3f} |",
            "",
            _report_line(result),
        ]
    if decision is not None and decision.event:
        lines += ["", f"Event `{decision.event}`: {decision.reason}"]
        if decision.payload.get("start_month"):
            p = decision.payload
            lines.append(f"Retrain window {p['start_month']}..{p['end_month']}")
    return "\n".join(lines)


@flow(name="monitor", flow_run_name=monitor_run_name, log_prints=False)
def monitor(
    start: str | None = None,
    end: str | None = None,
    model_version: str | None = None,
    trigger: bool = True,
) -> dict[str, Any]:
    """Judge the captured predictions of [start, end] (ISO times, UTC; default: the last
    ``monitoring.window_minutes``) of the champion (or ``model_version``); with ``trigger``,
    emit the drift event that starts a retrain when thresholds are crossed."""
    logger = get_run_logger()
    try:
        stale = stale_rollout_task()
        if stale is not None:
            logger.warning("monitor: %s", stale["reason"])
    except Exception as exc:  # the watchdog must not keep the drift check from running
        logger.warning("monitor: could not check for a stale rollout: %s", exc)
    try:
        result: Any = judge_task(start, end, model_version)
    except NotFoundError as exc:  # no champion yet (or no reference): nothing to judge
        logger.warning("monitor: nothing to judge: %s", exc)
        create_markdown_artifact(
            key="drift-report", markdown=f"Nothing to judge: {exc}", description="drift verdict"
        )
        return {"verdict": {"status": "no_model", "retrain": False, "reasons": [str(exc)]}}
    rename_run(monitor_outcome_name(result))
    decision: Any = trigger_task(result, trigger) if result.verdict.retrain else None
    record = None
    if result.inputs is not None:
        record = record_monitor(
            result.model_name,
            result.model_version,
            {"start": result.start, "end": result.end, "months": result.months},
            result.inputs,
            result.verdict,
        )
        logger.info("decision record %s", record["id"])
    if result.report is not None:
        create_table_artifact(
            key="drift-columns",
            table=_table(result),
            description=f"per-feature drift of v{result.model_version}",
        )
    create_markdown_artifact(
        key="drift-report", markdown=_markdown(result, decision), description="drift verdict"
    )
    logger.info("monitor: %s (%s)", result.verdict.status, result.verdict.reason)
    out: dict[str, Any] = result.to_dict()
    out["decision_id"] = record["id"] if record is not None else None
    out["trigger"] = (
        {
            "retrain_requested": decision.retrain_requested,
            "event": decision.event,
            "event_id": decision.event_id,
            "reason": decision.reason,
        }
        if decision is not None
        else None
    )
    return out
