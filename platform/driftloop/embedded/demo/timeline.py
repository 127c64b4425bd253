"""What the demo reports: one line per replayed month, the summary and the links to open."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from driftloop.errors import DriftloopError
from driftloop.loop.decisions import get_decision
from driftloop.monitoring.reports import list_reports
from driftloop.settings import Settings

Echo = Callable[[str], None]


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
    #: the monitor's key interval and the canary's, one line each (the "why")
    monitor: str = ""
    canary: str = ""

    def line(self) -> str:
        share = f"{self.drift_share:.2f}" if self.drift_share is not None else "  - "
        auc = f"{self.champion_auc:.3f}" if self.champion_auc is not None else "  -  "
        head = (
            f"{self.month}  {self.rows:>5}  {share:>5}  {auc:>6}  v{self.champion or '-':<3}  "
            f"{'; '.join(self.actions) or self.status}"
        )
        details = [f"           monitor: {self.monitor}"] if self.monitor else []
        if self.canary:
            details.append(f"           canary:  {self.canary}")
        return "\n".join([head, *details])


@dataclass
class DemoResult:
    timeline: list[MonthRow]
    retrains: int
    promotions: int
    rollbacks: int
    seconds: float
    links: dict[str, str]


def links(settings: Settings) -> dict[str, str]:
    latest = list_reports(settings, limit=1)
    p, m, s = settings.prefect, settings.mlflow, settings.serving
    return {
        # the UI's root: it asks for the API auth string, then Runs shows monitor -> retrain ->
        # rollout (a deep link opens the old UI, which cannot log in)
        "Prefect UI (log in, then Runs: monitor -> retrain -> rollout)": f"http://{p.host}:{p.port}/",
        "MLflow UI (versions, aliases, lineage tags)": (
            f"{m.browser_url}/#/models/{m.registered_model}"
        ),
        # its MLflow UI page (HTTP; the file path is what is left when MLflow has no copy)
        "latest drift report": latest[0].url if latest else "(none)",
        "inference API docs": f"http://{s.host}:{s.port}/docs",
        "operations dashboard": f"http://{s.host}:{s.port}/dashboard",
    }


def print_summary(
    timeline: list[MonthRow],
    retrains: int,
    promotions: int,
    rollbacks: int,
    seconds: float,
    links: dict[str, str],
    echo: Echo,
    logins: list[str] | None = None,
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
    for line in logins or []:
        echo(f"  {line}")


def monitor_line(out: dict[str, Any]) -> str:
    """The monitor verdict's key interval: the performance comparison it decided on."""
    verdict = out.get("verdict") or {}
    decided = "retrain" if verdict.get("retrain") else "no retrain"
    texts = verdict.get("reasons", []) if verdict.get("retrain") else verdict.get("info", [])
    key = next((t for t in texts if "ROC AUC" in t), texts[0] if texts else verdict.get("status"))
    return f"{key} -> {decided}"


def canary_line(outcome: dict[str, Any], settings: Settings) -> str:
    """The canary decision's key interval, from its decision record: for a promotion the log
    loss comparison, otherwise what decided it (the inferior metric, the guard, the halt or the
    budget with what stayed open)."""
    decision_id = outcome.get("rollout_decision")
    if not decision_id:
        return ""
    try:
        record = get_decision(str(decision_id), settings)
    except DriftloopError as exc:
        return f"decision {decision_id} ({exc})"
    metrics = {m["metric"]: m for m in record["outputs"].get("metrics", [])}
    decided = [m["text"] for m in metrics.values() if m["status"] == "inferior"]
    if record["decision"] == "promote" and "log_loss" in metrics:
        text = metrics["log_loss"]["text"]
    elif decided:
        text = decided[0]
    else:
        reasons = record["outputs"].get("reasons") or [record.get("reason", "")]
        text = "; ".join(reasons[:2])
    return f"{text} -> {record['decision']} [{decision_id}]"


def actions(outcome: dict[str, Any]) -> list[str]:
    status = outcome.get("status")
    if status == "skipped":
        return [f"retrain skipped ({outcome.get('guard')})"]
    if status not in ("finished",):
        return [f"retrain {status}: {outcome.get('error', '')}"[:120]]
    out = [f"retrain {outcome.get('window')} -> v{outcome.get('version')} {outcome.get('gate')}"]
    rollout = outcome.get("rollout")
    if rollout in ("promote", "rollback"):
        out.append(f"canary -> {outcome.get('rollout_outcome') or rollout}")
    elif outcome.get("gate") == "rejected":
        out.append("gate rejected it; serving untouched")
    return out
