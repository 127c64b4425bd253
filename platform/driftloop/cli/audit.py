"""CLI commands of the audit log: ``driftloop audit verify|list``."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from driftloop.registry.audit import audit_path, read_anchor, read_records, verify
from driftloop.settings import get_settings

audit_app = typer.Typer(
    help="The registry's audit log ({state}/audit/promotions.jsonl): verify its hash chain and "
    "its anchored head, list.",
    no_args_is_help=True,
)


@audit_app.command("verify")
def verify_cmd(
    require_anchor: Annotated[
        bool,
        typer.Option(
            "--require-anchor",
            help="Fail (exit 1) when the registry's anchor of the chain head cannot be checked "
            "(registry unreachable, no anchor tag): the file alone cannot show truncation or a "
            "rewritten chain.",
        ),
    ] = False,
) -> None:
    """Walk the hash chain and check its head against the anchor kept in the registry (tag
    driftloop.audit_head): exit 0 when intact, 1 naming the first problem (edited, deleted,
    reordered or malformed line; records deleted from the end; hashes stripped; the chain
    rewritten). Unanchored (registry unreachable, no tag), the file alone is checked and the
    output says so."""
    settings = get_settings()
    anchor, why = read_anchor(settings)
    result = verify(settings, anchor=anchor, unanchored=why)
    if not result.intact:
        typer.echo(f"audit log broken: {result.summary()}", err=True)
        raise typer.Exit(1)
    if require_anchor and not result.anchored:
        typer.echo(f"audit log not verified (--require-anchor): {result.summary()}", err=True)
        raise typer.Exit(1)
    typer.echo(result.summary())


@audit_app.command("list")
def list_cmd(
    limit: Annotated[int, typer.Option(help="Show the last this many records (0: all).")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON record a line.")] = False,
) -> None:
    """Registry changes, oldest first: when, what, who, versions, weights."""
    settings = get_settings()
    records = read_records(settings)
    shown = records[-limit:] if limit > 0 else records
    if as_json:
        for record in shown:
            typer.echo(json.dumps(record, default=str))
        return
    if not records:
        typer.echo(f"no audit records yet ({audit_path(settings)})")
        return
    typer.echo(f"{'ts':<26} {'action':<20} {'actor':<16} {'model':<16} {'versions':<12} weight")
    for r in shown:
        versions = f"{r.get('from_version') or '-'}->{r.get('to_version') or '-'}"
        weights = f"{r.get('weight_before')}->{r.get('weight_after')}"
        error = f"  ERROR {r['error']}" if r.get("error") else ""
        typer.echo(
            f"{str(r.get('ts', ''))[:26]:<26} {r.get('action', '?'):<20} "
            f"{str(r.get('actor', '?'))[:16]:<16} {str(r.get('model', '?'))[:16]:<16} "
            f"{versions:<12} {weights}{error}"
        )


def register(app: typer.Typer) -> None:
    """Add this area's commands to the main app."""
    app.add_typer(audit_app, name="audit")
