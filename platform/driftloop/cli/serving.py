"""CLI commands of the serving area: ``driftloop serve``, ``driftloop promote|rollback`` and
``driftloop rollout start|status|promote|rollback|restore|mode``."""

from __future__ import annotations

import json
import os
from typing import Annotated, Any

import typer

from driftloop.cli.common import progress
from driftloop.registry.promotion import promote, restore, rollback, set_mode
from driftloop.settings import get_settings, use_settings

rollout_app = typer.Typer(
    help="Canary the challenger, judge it on live traffic, promote or roll back.",
    no_args_is_help=True,
)

REASON_HELP = "Why (goes to the audit log at {state}/audit/promotions.jsonl)."


def _actor() -> str:
    return f"cli:{os.environ.get('USER', 'unknown')}"


def _echo(record: dict[str, Any]) -> None:
    typer.echo(json.dumps(record, indent=2, default=str))


def serve(
    host: Annotated[str | None, typer.Option(help="Bind host (settings: serving.host).")] = None,
    port: Annotated[int | None, typer.Option(help="Bind port (settings: serving.port).")] = None,
) -> None:
    """Run the inference API (OIP v2, canary routing, capture, /metrics, /docs) in the
    foreground: uvicorn, one worker, models reconciled from the MLflow registry."""
    from serving.__main__ import run  # lazy: start-up cost

    settings = get_settings()
    update = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    if update:
        settings = settings.model_copy(
            update={"serving": settings.serving.model_copy(update=update)}
        )
        use_settings(settings)
    typer.echo(
        f"serving {settings.mlflow.registered_model} on "
        f"http://{settings.serving.host}:{settings.serving.port} (docs at /docs)",
        err=True,
    )
    settings = settings.with_mlflow_role("serving")  # read-only registry user
    use_settings(settings)
    run(settings)


VERSION_HELP = (
    "The challenger version you mean: refused (exit 1) when the challenger is another one."
)


def promote_cmd(
    reason: Annotated[str, typer.Option(help=REASON_HELP)] = "manual promotion",
    version: Annotated[str | None, typer.Option(help=VERSION_HELP)] = None,
) -> None:
    """champion <- challenger's version; drop the challenger; weight 0. Only a challenger
    whose canary rollout was started (`driftloop rollout start`) can be promoted."""
    _echo(promote(_actor(), reason, expected_challenger=version))


def rollback_cmd(
    reason: Annotated[str, typer.Option(help=REASON_HELP)] = "manual rollback",
    version: Annotated[str | None, typer.Option(help=VERSION_HELP)] = None,
) -> None:
    """Drop the challenger; weight 0 (all traffic to the champion)."""
    _echo(rollback(_actor(), reason, expected_challenger=version))


@rollout_app.command("start")
def rollout_start(
    weight: Annotated[
        int | None, typer.Option(help="Challenger share in percent (settings default).")
    ] = None,
    wait: Annotated[
        bool,
        typer.Option(help="Look at the evidence until it concludes (--no-wait: only start)."),
    ] = True,
) -> None:
    """Put the challenger on a canary weight and (by default) judge it on live traffic: a look
    every rollout.look_every routed requests, always-valid intervals, promote / roll back /
    extend until the budget (rollout.max_requests, rollout.max_minutes)."""
    from driftloop.loop.rollout import run_rollout, start  # lazy: start-up cost

    if not wait:
        _echo(start(weight, _actor()))
        return
    settings = get_settings()
    budget = settings.rollout.max_requests
    with progress("routed requests judged", total=budget) as bar:
        task = bar.task_ids[0]

        def on_look(look: int, decision: Any) -> None:
            bar.update(task, completed=min(budget, decision.evidence.routed))

        decision, record = run_rollout(weight, actor=_actor(), on_look=on_look)
    typer.echo(f"{decision.decision}: {decision.reason}")
    _echo(record)


@rollout_app.command("status")
def rollout_status_cmd() -> None:
    """Champion, challenger, weight and, during a rollout, the decision its evidence supports
    now: every metric's interval, margin and status, and the sample-ratio check."""
    from driftloop.loop.rollout import reset_stale_rollout  # lazy: start-up cost
    from driftloop.monitoring.noninferiority import rollout_status  # lazy: start-up cost

    stale = reset_stale_rollout(actor=_actor())
    if stale is not None:
        typer.echo(f"reset a stale rollout: {stale['reason']}", err=True)
    _echo(rollout_status())


def _numbers(decision: Any) -> dict[str, Any]:
    numbers: dict[str, Any] = decision.to_dict()
    numbers.pop("evidence", None)
    return numbers


@rollout_app.command("promote")
def rollout_promote(
    reason: Annotated[str, typer.Option(help=REASON_HELP)] = "",
    version: Annotated[str | None, typer.Option(help=VERSION_HELP)] = None,
) -> None:
    """Promote the challenger now (a human decision), recording what the evidence said."""
    from driftloop.loop.rollout import judge_canary  # lazy: start-up cost

    decision = judge_canary()
    why = reason or f"manual promotion; the evidence said {decision.decision}: {decision.reason}"
    judged = version or decision.evidence.challenger.version
    _echo(promote(_actor(), why, _numbers(decision), expected_challenger=judged))


@rollout_app.command("rollback")
def rollout_rollback(reason: Annotated[str, typer.Option(help=REASON_HELP)] = "") -> None:
    """Roll the running rollout back now, recording what the evidence said."""
    from driftloop.loop.rollout import judge_canary  # lazy: start-up cost

    decision = judge_canary()
    _echo(rollback(_actor(), reason or "manual rollback", _numbers(decision)))


@rollout_app.command("restore")
def rollout_restore(
    to: Annotated[
        str | None,
        typer.Option(
            "--to",
            help="Restore this version: it must have been champion before, per the audit log. "
            "Default: the version the current champion replaced (recorded at its promotion).",
        ),
    ] = None,
    reason: Annotated[str, typer.Option(help=REASON_HELP)] = "",
) -> None:
    """Set the champion back to the version it replaced (or --to V), dropping any challenger
    and canary; audited as `restore` (from, to). Refused (exit 1) when there is nothing to
    restore to."""
    record = restore(to, _actor(), reason)
    typer.echo(f"champion {record['from_version']} -> {record['to_version']} (restored)", err=True)
    _echo(record)


@rollout_app.command("mode")
def rollout_mode(
    mode: Annotated[
        str,
        typer.Argument(
            help="canary (the challenger answers its share), shadow (it scores a copy, the "
            "champion answers) or settings (drop the registry override: serving.mode decides)."
        ),
    ],
    reason: Annotated[str, typer.Option(help=REASON_HELP)] = "",
) -> None:
    """Set how every serving replica uses the challenger (a registry tag, audited)."""
    _echo(set_mode("" if mode == "settings" else mode, _actor(), reason or f"mode {mode}"))


def register(app: typer.Typer) -> None:
    """Add this area's commands to the main app."""
    app.command("serve")(serve)
    app.command("promote")(promote_cmd)
    app.command("rollback")(rollback_cmd)
    app.add_typer(rollout_app, name="rollout")
