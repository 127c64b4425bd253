"""``driftloop dashboard``: the operations dashboard without Grafana. The inference API serves it
(``GET /dashboard``: requests, errors and latency by version and variant, canary weight, capture
drops, drift share and estimated ROC AUC per monitor window, retrains and decisions); this
command checks that it answers, prints its URL and the headline figures, and opens it in a
browser with ``--open``."""

from __future__ import annotations

import json
import webbrowser
from typing import Annotated, Any

import httpx
import typer

from driftloop.errors import ServiceUnavailableError
from driftloop.settings import Settings, get_settings

#: Bind-all addresses, reached on this machine through loopback.
ANY_ADDRESS = {"0.0.0.0", "::", "[::]", ""}


def dashboard_url(settings: Settings) -> str:
    """The base URL of the local inference API (a bind-all host is reached on 127.0.0.1)."""
    host = settings.serving.host
    host = "127.0.0.1" if host in ANY_ADDRESS else host
    return f"http://{host}:{settings.serving.port}"


def fetch_figures(base: str, timeout_s: float = 10.0) -> dict[str, Any]:
    """``GET {base}/dashboard/figures``; a clear error when the API does not answer."""
    url = f"{base.rstrip('/')}/dashboard/figures"
    try:
        response = httpx.get(url, timeout=timeout_s)
    except httpx.HTTPError as exc:
        raise ServiceUnavailableError(
            f"the inference API does not answer at {base} ({type(exc).__name__}): start it with "
            "`driftloop serve` (or `make demo`), or pass --url"
        ) from None
    if response.status_code != 200:
        try:
            why = response.json().get("error", response.text)
        except ValueError:
            why = response.text
        raise ServiceUnavailableError(f"{url} answered HTTP {response.status_code}: {why[:300]}")
    figures: dict[str, Any] = response.json()
    return figures


def summary(figures: dict[str, Any]) -> list[str]:
    """The headline figures, one line each."""
    serving = figures["serving"]
    lines = [
        f"model {figures['model']}: {serving['status']}, champion v{serving['champion']}, "
        f"challenger {('v' + str(serving['challenger'])) if serving['challenger'] else 'none'}, "
        f"canary weight {serving['canary_weight']} %, mode {serving['mode']}"
    ]
    for row in figures["traffic"]:
        p95 = row.get("p95_ms")
        lines.append(
            f"  v{row['model_version']} {row['variant']}: {row['requests']} requests, "
            f"{row['errors']} errors, p95 {'-' if p95 is None else f'{p95:.1f} ms'}"
        )
    dropped = sum(d["rows"] for d in figures["capture"]["dropped"])
    lines.append(f"capture: {figures['capture']['written']} rows written, {dropped} dropped")
    if figures["monitor"]:
        last = figures["monitor"][-1]
        share = last["drift_share"]
        auc = last["estimated_auc"]
        lines.append(
            f"last monitor window {str(last['start'])[:10]}..{str(last['end'])[:10]} "
            f"(v{last['version']}): {last['decision']}, drift share "
            f"{'-' if share is None else f'{share:.2f}'}, estimated AUC "
            f"{'-' if auc is None else f'{auc:.3f}'}"
        )
    else:
        lines.append("no monitor window judged yet")
    lines.append(f"retrains: {figures['retrains'] or 'none'}")
    lines.append(
        f"decisions: monitor {figures['verdicts'] or 'none'}, "
        f"rollout {figures['rollout_decisions'] or 'none'}"
    )
    return lines


def dashboard_cmd(
    url: Annotated[
        str | None,
        typer.Option(help="Base URL of the inference API (default: settings serving.host/port)."),
    ] = None,
    open_browser: Annotated[
        bool, typer.Option("--open", help="Open the page in the default browser.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
) -> None:
    """Show the operations dashboard (the figures of the Grafana dashboard, without Grafana):
    prints the page's URL and the headline figures; --open opens the page."""
    base = (url or dashboard_url(get_settings())).rstrip("/")
    figures = fetch_figures(base)
    page = f"{base}/dashboard"
    if as_json:
        typer.echo(json.dumps({"url": page, **figures}, indent=2, default=str))
    else:
        typer.echo(f"dashboard: {page}")
        for line in summary(figures):
            typer.echo(line)
    if open_browser and not webbrowser.open(page):
        typer.echo(f"no browser found here: open {page}", err=True)


def register(app: typer.Typer) -> None:
    """Add ``driftloop dashboard`` to ``app``."""
    app.command("dashboard")(dashboard_cmd)
