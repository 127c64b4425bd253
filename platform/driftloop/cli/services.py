"""CLI commands of the embedded platform: up, down, status, deploy."""

from __future__ import annotations

from typing import Annotated

import typer

from driftloop.embedded.platform import start_all, status_all, stop_all
from driftloop.errors import ServiceUnavailableError
from driftloop.settings import get_settings, ui_logins


def up(
    deploy: Annotated[
        bool, typer.Option(help="Register the Prefect deployments and automations.")
    ] = True,
) -> None:
    """Start MLflow and Prefect (with UI) on 127.0.0.1, register deployments, start a worker."""
    settings = get_settings()
    statuses = start_all(settings, deploy=deploy, progress=lambda msg: typer.echo(msg, err=True))
    for st in statuses:
        typer.echo(st.line())
    typer.echo(f"MLflow UI:  {settings.mlflow.uri}")
    typer.echo(f"Prefect UI: {settings.prefect.url.removesuffix('/api')}")
    for line in ui_logins(settings):
        typer.echo(line)


def down() -> None:
    """Stop everything `up` started; leaves no process behind."""
    stopped = stop_all()
    typer.echo(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


def status() -> None:
    """Show each service: running, healthy, pid, URL and log file. Exit 1 when one is down."""
    statuses = status_all(get_settings())
    for st in statuses:
        typer.echo(st.line())
    required = [s for s in statuses if s.name in ("mlflow", "prefect")]
    if not all(s.healthy for s in required):
        raise ServiceUnavailableError("not all services are healthy: run `driftloop up`")


def deploy() -> None:
    """Register the deployments of prefect.yaml and the automations on the Prefect server."""
    from driftloop.embedded.deploy import deploy_all  # lazy: start-up cost

    deploy_all()
    typer.echo("deployments registered")


def register(app: typer.Typer) -> None:
    """Add this area's commands to the main app."""
    app.command()(up)
    app.command()(down)
    app.command()(status)
    app.command()(deploy)
