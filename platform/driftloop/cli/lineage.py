"""``driftloop lineage``: the lineage of a model version, of a lineage id, or of one prediction.

``driftloop lineage REF`` prints and checks a version's lineage (:mod:`driftloop.cli.training`,
whose command this one extends); ``--id LINEAGE_ID`` resolves the ``lineage_id`` of an inference
response; ``--prediction REQUEST_ID`` finds the request in the inference log (the capture files
of this machine's state) and resolves the lineage id its answer was captured with.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from driftloop.cli import training
from driftloop.data.capture import capture_dir, request_lineage, resolve_lineage
from driftloop.errors import InvalidInputError, NotFoundError
from driftloop.settings import Settings, get_settings


def _served_call(request_id: str, settings: Settings) -> dict[str, Any]:
    """The captured call that answered ``request_id`` (NotFoundError naming why not)."""
    calls = request_lineage(request_id, settings)
    if not calls:
        raise NotFoundError(
            f"no captured prediction has request id {request_id!r} "
            f"(inference log: {capture_dir(settings) / 'predictions'})"
        )
    served = [c for c in calls if c["served"] is not False] or calls
    answer = served[0]
    if len({c["ts"] for c in served}) > 1:
        typer.echo(
            f"note: request id {request_id!r} was used by {len(served)} requests; "
            f"showing the newest ({answer['ts']})",
            err=True,
        )
    if not answer.get("lineage_id"):
        raise NotFoundError(
            f"request {request_id!r} was captured without a lineage id (before lineage ids "
            f"were recorded); it was answered by version {answer['model_version']}: "
            f"see `driftloop lineage {answer['model_version']}`"
        )
    return answer


def _show(found: dict[str, Any]) -> None:
    width = max(len(k) for k in found)
    for key, value in found.items():
        if key == "links":
            for name, url in value.items():
                typer.echo(f"{'link ' + name:<{width + 6}} {url}")
        elif isinstance(value, dict | list):
            typer.echo(f"{key:<{width + 6}} {json.dumps(value)}")
        else:
            typer.echo(f"{key:<{width + 6}} {value}")


def lineage(
    ref: Annotated[
        str | None,
        typer.Argument(help="A model version: NAME@ALIAS, NAME:VERSION, @ALIAS or VERSION."),
    ] = None,
    no_check: Annotated[
        bool, typer.Option("--no-check", help="With REF: print the chain without resolving it.")
    ] = False,
    prediction: Annotated[
        str | None,
        typer.Option(
            "--prediction", help="A request id: the lineage of the model version that answered."
        ),
    ] = None,
    lineage_id: Annotated[
        str | None,
        typer.Option("--id", help="A lineage id (parameters.lineage_id of a response)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
) -> None:
    """The lineage of a model version (REF), of a response's lineage id (--id) or of a captured
    prediction (--prediction REQUEST_ID): version, training run, data revision, feature service,
    git commit and links. Exit 1 with one line when it does not resolve."""
    given = [x for x in (ref, prediction, lineage_id) if x is not None]
    if len(given) != 1:
        raise InvalidInputError("give exactly one of REF, --prediction REQUEST_ID or --id ID")
    if ref is not None:
        training.lineage(ref, no_check)
        return
    settings = get_settings()
    call: dict[str, Any] | None = None
    if prediction is not None:
        call = _served_call(prediction, settings)
        lineage_id = str(call["lineage_id"])
    assert lineage_id is not None
    found = resolve_lineage(lineage_id, settings)
    if call is not None:
        found = {
            "request_id": prediction,
            "captured_at": str(call["ts"]),
            "variant": call["variant"],
            "synthetic": call["synthetic"],
            **found,
        }
    if as_json:
        typer.echo(json.dumps(found, default=str))
    else:
        _show(found)


def register(app: typer.Typer) -> None:
    """Add ``lineage`` to the main app, replacing the version-only command of
    :mod:`driftloop.cli.training` (which REF still runs): registered after it."""
    app.registered_commands = [c for c in app.registered_commands if c.name != "lineage"]
    app.command("lineage")(lineage)
