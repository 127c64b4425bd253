"""``driftloop cost``: resource use per activity turned into money."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer


def _money(value: float | None, currency: str) -> str:
    if value is None:
        return "-"
    return f"{value:,.2f} {currency}" if value >= 0.01 else f"{value:.3g} {currency}"


def _num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _render(report: Any) -> None:
    c = report.currency
    typer.echo(
        f"prices: {report.cpu_hour:g} {c} per CPU hour, {report.gpu_hour:g} {c} per GPU hour "
        "(settings.cost)"
    )
    typer.echo("\ntraining runs (MLflow cost.* metrics)")
    if not report.training:
        typer.echo("  none with a cost yet")
    else:
        typer.echo(
            f"  {'started':<25} {'run':<12} {'version':>7} {'device':<7} {'CPU s':>9} "
            f"{'GPU s':>8} {'predict CPU s/1k':>16} {'cost':>16}"
        )
        for t in report.training:
            typer.echo(
                f"  {t.started:<25} {t.run_id[:12]:<12} {t.version or '-':>7} "
                f"{t.device or '-':<7} {_num(t.cpu_seconds, 1):>9} {_num(t.gpu_seconds, 1):>8} "
                f"{_num(t.predict_cpu_s_per_1k, 4):>16} {_money(t.money, c):>16}"
            )
    typer.echo("\nretrain loops (ledger)")
    if not report.loops:
        typer.echo("  none with a cost yet")
    else:
        typer.echo(
            f"  {'requested':<26} {'window':<17} {'status':<9} {'version':>7} {'CPU s':>9} "
            f"{'wall s':>9} {'cost':>16}"
        )
        for loop in report.loops:
            typer.echo(
                f"  {loop.requested_at[:25]:<26} {loop.window:<17} {loop.status:<9} "
                f"{loop.version or '-':>7} {_num(loop.cpu_seconds, 1):>9} "
                f"{_num(loop.wall_seconds, 1):>9} {_money(loop.money, c):>16}"
            )
    typer.echo(f"\nserving ({', '.join(report.serving_sources)})")
    if not report.serving:
        typer.echo("  no predictions counted yet")
    else:
        typer.echo(
            f"  {'version':>7} {'predictions':>12} {'CPU s':>9} {'CPU s/1k':>9} "
            f"{'per 1k':>16} {'per 1M':>16}"
        )
        for s in report.serving:
            typer.echo(
                f"  {s.model_version:>7} {s.predictions:>12,.0f} {_num(s.cpu_seconds, 2):>9} "
                f"{_num(s.cpu_s_per_1k, 4):>9} {_money(s.money_per_1k, c):>16} "
                f"{_money(s.money_per_1m, c):>16}"
            )
    for note in report.notes:
        typer.echo(f"note: {note}", err=True)


def cost_cmd(
    limit: Annotated[int, typer.Option(min=1, help="Training runs and loops listed, newest.")] = (
        20
    ),
    serving_url: Annotated[
        list[str] | None,
        typer.Option(
            "--serving-url",
            help="A serving replica's /metrics URL (repeatable; default cost.serving_metrics_urls"
            ", else the local inference API).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """What training runs, retrain loops and serving cost: CPU and GPU seconds from MLflow, the
    retrain ledger and serving's /metrics, priced with settings.cost (cpu_hour, gpu_hour)."""
    from driftloop.loop.cost_report import build_cost_report  # lazy: start-up cost

    report = build_cost_report(limit=limit, serving_urls=serving_url or None)
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2, default=str))
        return
    _render(report)


def register(app: typer.Typer) -> None:
    """Add ``driftloop cost`` to ``app``."""
    app.command("cost")(cost_cmd)
