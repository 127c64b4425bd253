"""What the demo reports: one line per replayed month, the summary and the links to open."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

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


def links(settings: Settings) -> dict[str, str]:
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


def print_summary(
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


def actions(outcome: dict[str, Any]) -> list[str]:
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
