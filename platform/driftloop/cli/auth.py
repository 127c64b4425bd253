"""``driftloop auth``: MLflow users and permissions, and the embedded platform's secrets.

``driftloop auth provision`` is what the Helm chart runs as a Job: every input comes from the
environment (never from arguments, which other users can read in the process list)::

    MLFLOW_TRACKING_URI                                       the MLflow server (basic auth on)
    DRIFTLOOP_AUTH_ADMIN_USERNAME / _PASSWORD                 its administrator
    DRIFTLOOP_AUTH_FLOWS_USERNAME / _PASSWORD                 and per role: flows, serving,
    DRIFTLOOP_AUTH_SERVING_USERNAME / _PASSWORD               rollout
    DRIFTLOOP_AUTH_ROLLOUT_USERNAME / _PASSWORD
    DRIFTLOOP_MLFLOW__EXPERIMENT, DRIFTLOOP_MLFLOW__REGISTERED_MODEL   (settings; defaults)
"""

from __future__ import annotations

import os
import secrets
from typing import Annotated

import typer

from driftloop.errors import ConfigurationError
from driftloop.registry.access import (
    Credentials,
    provision,
    provision_embedded,
    rotate_admin_password,
)
from driftloop.settings import (
    MLFLOW_ROLES,
    PREFECT_SECRET,
    PREFECT_USER,
    embedded_mlflow_credentials,
    get_settings,
    mlflow_secret_name,
    secrets_dir,
    write_secret,
)

auth_app = typer.Typer(
    help="Access control of MLflow and Prefect: provision users, rotate the embedded secrets.",
    no_args_is_help=True,
)


def _env(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        raise ConfigurationError(f"{name} is not set")
    return value


@auth_app.command("provision")
def provision_cmd() -> None:
    """Create or update the MLflow users flows, serving and rollout and their permissions
    (idempotent). Reads MLFLOW_TRACKING_URI and DRIFTLOOP_AUTH_* from the environment."""
    settings = get_settings()
    uri = os.environ.get("MLFLOW_TRACKING_URI") or settings.mlflow.uri
    admin = Credentials(
        _env("DRIFTLOOP_AUTH_ADMIN_USERNAME"), _env("DRIFTLOOP_AUTH_ADMIN_PASSWORD")
    )
    users = {
        role: Credentials(
            _env(f"DRIFTLOOP_AUTH_{role.upper()}_USERNAME"),
            _env(f"DRIFTLOOP_AUTH_{role.upper()}_PASSWORD"),
        )
        for role in MLFLOW_ROLES
    }
    result = provision(
        uri,
        admin,
        users,
        settings.mlflow.experiment,
        settings.mlflow.registered_model,
        timeout=settings.mlflow.request_timeout_s,
    )
    typer.echo(result.line())


@auth_app.command("rotate")
def rotate_cmd(
    secret: Annotated[
        str,
        typer.Argument(
            help="What to replace: admin, flows, serving, rollout (MLflow passwords) or prefect "
            "(the Prefect API auth string)."
        ),
    ],
) -> None:
    """Replace one generated secret of the embedded platform. MLflow passwords change on the
    running server at once (restart `driftloop up` so its processes get the new one); the
    Prefect string takes effect when `driftloop down && driftloop up` restarts the server."""
    settings = get_settings()
    new = secrets.token_urlsafe(32)
    if secret == "prefect":
        write_secret(settings, PREFECT_SECRET, f"{PREFECT_USER}:{new}")
        typer.echo("new Prefect API auth string written: restart with `driftloop down && up`")
        return
    if secret not in ("admin", *MLFLOW_ROLES):
        raise ConfigurationError(
            f"unknown secret {secret!r}: admin, flows, serving, rollout or prefect"
        )
    current = embedded_mlflow_credentials(settings, secret)
    if current is None:
        raise ConfigurationError(
            "MLflow auth is off or the tracking URI is external: rotate passwords there"
        )
    if secret == "admin":
        rotate_admin_password(settings.mlflow.uri, Credentials(*current), new)
        write_secret(settings, mlflow_secret_name("admin"), new)
    else:
        write_secret(settings, mlflow_secret_name(secret), new)
        try:
            provision_embedded(settings)
        except Exception:
            write_secret(settings, mlflow_secret_name(secret), current[1])  # keep them in step
            raise
    typer.echo(f"new password of MLflow user {secret!r} in effect and written to the state")


@auth_app.command("show")
def show_cmd() -> None:
    """Where the embedded platform's secrets are (not their values)."""
    settings = get_settings()
    folder = secrets_dir(settings)
    typer.echo(f"secrets folder: {folder} (mode 0700; files 0600)")
    for role in ("admin", *MLFLOW_ROLES):
        typer.echo(f"  MLflow user {role:<8} {folder / mlflow_secret_name(role)}")
    typer.echo(f"  Prefect API   {folder / PREFECT_SECRET}  (the UI asks for this user:password)")


def register(app: typer.Typer) -> None:
    """Add this area's commands to the main app."""
    app.add_typer(auth_app, name="auth")
