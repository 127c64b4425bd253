"""``driftloop lens check|report|readme``: the Machine Learning Lens scorecard (lens.yaml)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from driftloop.errors import InvalidInputError, NotFoundError
from driftloop.lens.check import check
from driftloop.lens.document import LENS_FILE, Entry, load_document
from driftloop.lens.practices import PRACTICES
from driftloop.lens.report import README_FILE, Format, render, updated_readme
from driftloop.settings import project_root

lens_app = typer.Typer(
    help="The Machine Learning Lens as code: lens.yaml maps each of the lens's 78 best practices "
    "to its status, the code that realises it and the tests that prove it.",
    no_args_is_help=True,
)

RootOption = Annotated[
    Path | None,
    typer.Option(
        "--root",
        help="Repository holding lens.yaml and README.md (default: this checkout).",
        file_okay=False,
    ),
]


def _root(root: Path | None) -> Path:
    return (root or project_root()).resolve()


def _entries(base: Path) -> dict[str, Entry]:
    """The entries of ``base/lens.yaml``; InvalidInputError (one line) when the file as a whole
    cannot be read, since no scorecard could be drawn from it."""
    doc = load_document(base / LENS_FILE)
    if not doc.readable:
        raise InvalidInputError(str(doc.problems[0]))
    return doc.entries


@lens_app.command("check")
def check_cmd(
    root: RootOption = None,
    readme: Annotated[
        bool, typer.Option(help="Also require README.md's generated section to be current.")
    ] = True,
) -> None:
    """Exit 1 with one line per problem: a practice left out or named twice, a named file,
    symbol or test that does not exist, a realised practice without a test, a not applicable one
    without a reason, an organisational one without its template, a stale README section."""
    problems = check(_root(root), readme=readme)
    for problem in problems:
        typer.echo(f"lens: {problem}", err=True)
    if problems:
        typer.echo(f"lens check: {len(problems)} problem(s) in {LENS_FILE}", err=True)
        raise typer.Exit(1)
    typer.echo(f"lens check: {len(PRACTICES)} practices, every reference resolves")


@lens_app.command("report")
def report_cmd(
    fmt: Annotated[
        str, typer.Option("--format", help="md (Markdown), html (one page) or json.")
    ] = "md",
    out: Annotated[
        Path | None, typer.Option("--out", help="Write here instead of standard output.")
    ] = None,
    root: RootOption = None,
) -> None:
    """The scorecard: counts per pillar and status, then each practice with its evidence, code
    and tests."""
    if fmt not in ("md", "html", "json"):
        raise InvalidInputError(f"--format {fmt!r}: use md, html or json")
    base = _root(root)
    text = render(_entries(base), _format(fmt))
    problems = check(base, readme=False)
    if problems:
        typer.echo(
            f"warning: {len(problems)} problem(s) in {LENS_FILE} (run `driftloop lens check`)",
            err=True,
        )
    if out is None:
        typer.echo(text, nl=False)
        return
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise InvalidInputError(f"cannot write {out}: {exc.strerror or exc}") from None
    typer.echo(f"wrote {out}")


def _format(fmt: str) -> Format:
    if fmt == "html":
        return "html"
    if fmt == "json":
        return "json"
    return "md"


@lens_app.command("readme")
def readme_cmd(root: RootOption = None) -> None:
    """Rewrite the section of README.md between <!-- lens:begin --> and <!-- lens:end --> from
    lens.yaml (nothing else of the README changes)."""
    base = _root(root)
    entries = _entries(base)
    path = base / README_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise NotFoundError(f"cannot read {path}: {exc.strerror or exc}") from None
    new = updated_readme(text, entries)
    if new == text:
        typer.echo(f"{README_FILE}: the lens section is up to date")
        return
    path.write_text(new, encoding="utf-8")
    typer.echo(f"{README_FILE}: lens section rewritten from {LENS_FILE}")


def register(app: typer.Typer) -> None:
    """Add this area's commands to the main app."""
    app.add_typer(lens_app, name="lens")
