"""The ``driftloop`` command line. Each area registers its commands from its own module; known
errors become one readable line on stderr and exit code 1."""

from __future__ import annotations

import click
import typer

from driftloop.errors import DriftloopError
from driftloop.logs import configure_logging
from driftloop.settings import get_settings

app = typer.Typer(
    name="driftloop",
    help="driftloop: drift -> retrain -> evaluation gate -> canary -> promote or roll back.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _register_all() -> None:
    # Sub-modules of this package: imported when the CLI runs, not while its __init__ is half done.
    from driftloop.cli import (
        audit,
        auth,
        batch,
        cost,
        dashboard,
        data,
        features,
        housekeeping,
        lens,
        monitoring,
        services,
        serving,
        training,
    )

    for module in (
        services,
        data,
        features,
        training,
        serving,
        monitoring,
        auth,
        audit,
        lens,
        cost,
        housekeeping,
        batch,
        dashboard,
    ):
        module.register(app)
    # last: it replaces training's version-only `lineage` with one that also resolves a lineage
    # id or a captured prediction
    from driftloop.cli import lineage

    lineage.register(app)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``driftloop`` script."""
    _register_all()
    try:
        configure_logging(get_settings().log_level)
        rc = app(args=argv, standalone_mode=False)
        if isinstance(rc, int) and rc:
            raise SystemExit(rc)
    except DriftloopError as err:
        typer.echo(f"error: {err}", err=True)
        raise SystemExit(1) from None
    except click.exceptions.Abort:
        typer.echo("aborted", err=True)
        raise SystemExit(1) from None
    except click.exceptions.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    except click.ClickException as exc:
        typer.echo(f"error: {exc.format_message()}", err=True)
        raise SystemExit(1) from None
    except ValueError as exc:  # pydantic settings validation and friends
        typer.echo(f"error: {str(exc).splitlines()[0]}", err=True)
        raise SystemExit(1) from None
