"""``driftloop lens report``: the scorecard as Markdown, HTML or JSON, and the README section.

The README section (between :data:`BEGIN` and :data:`END`) is generated, never edited by hand:
``driftloop lens readme`` rewrites it and ``driftloop lens check`` fails while it differs from
what ``lens.yaml`` gives, so the README cannot claim more than the file.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any, Literal

from driftloop.errors import InvalidInputError
from driftloop.lens.document import STATUSES, Entry
from driftloop.lens.page import render_html
from driftloop.lens.scorecard import Scorecard

Format = Literal["md", "html", "json"]
README_FILE = "README.md"
BEGIN = "<!-- lens:begin -->"
END = "<!-- lens:end -->"
NOTE = "<!-- generated from lens.yaml by `driftloop lens readme`: edit lens.yaml, not this -->"

MEANING = (
    "*realised*: code does it and a test proves it; *partial*: some of it; *organisational*: "
    "people decide it, and a template under [`docs/lens/`](docs/lens/) helps; *not applicable*: "
    "with the reason; *missing*: nothing does it yet."
)


def _wrap(text: str, indent: str = "") -> str:
    """``text`` wrapped at the README's 100 columns (continuation lines indented by ``indent``)."""
    return textwrap.fill(
        text, width=100, subsequent_indent=indent, break_long_words=False, break_on_hyphens=False
    )


def _cell(text: str) -> str:
    """``text`` as one Markdown table cell (no line breaks, pipes escaped)."""
    return " ".join(text.split()).replace("|", "\\|")


def _counts_table(card: Scorecard) -> list[str]:
    head = "| pillar | " + " | ".join(STATUSES) + " | total |"
    rule = "|---|" + "---:|" * (len(STATUSES) + 1)
    lines = [head, rule]
    for pillar in card.pillars():
        cells = " | ".join(str(pillar.counts[s]) for s in STATUSES)
        lines.append(f"| {pillar.name} ({pillar.prefix}) | {cells} | {pillar.total} |")
    totals = card.totals()
    cells = " | ".join(f"**{totals[s]}**" for s in STATUSES)
    lines.append(f"| **all** | {cells} | **{sum(totals.values())}** |")
    return lines


def readme_section(entries: dict[str, Entry]) -> str:
    """The README's generated section, markers included."""
    card = Scorecard.of(entries)
    lines = [
        BEGIN,
        NOTE,
        "",
        _wrap(
            f"[`lens.yaml`](lens.yaml) maps each of the Machine Learning Lens's {len(card.rows)} "
            "best practices to its status, the code that realises it and the tests that prove "
            "it; `driftloop lens check` (part of `make test`) fails when a named file, symbol or "
            "test does not exist, a practice is left out, or a realised one names no test. "
            + MEANING
        ),
        "",
        *_counts_table(card),
        "",
    ]
    for status in STATUSES:
        if status == "realised":
            continue
        ids = [p.id for p in card.with_status(status)]
        if ids:
            lines.append(_wrap(f"- {status.capitalize()}: {', '.join(ids)}.", indent="  "))
    lines += [
        "",
        _wrap(
            "The whole scorecard, with the evidence for each practice: `driftloop lens report "
            "--format html --out lens.html` (or `--format md`, `--format json`)."
        ),
        END,
    ]
    return "\n".join(lines)


def render_markdown(entries: dict[str, Entry]) -> str:
    """The whole scorecard: counts, then a table per pillar with each practice's evidence."""
    card = Scorecard.of(entries)
    lines = ["# Machine Learning Lens scorecard", "", MEANING, "", *_counts_table(card)]
    for pillar in card.pillars():
        lines += [
            "",
            f"## {pillar.name} ({pillar.prefix})",
            "",
            "| id | practice | status | evidence | code | tests |",
            "|---|---|---|---|---|---|",
        ]
        for practice, entry in card.rows:
            if practice.prefix != pillar.prefix:
                continue
            evidence = entry.evidence
            if entry.reason:
                evidence += f" Not applicable: {entry.reason}"
            if entry.template:
                evidence += f" Template: `{entry.template}`."
            code = "<br>".join(f"`{c}`" for c in entry.code)
            tests = "<br>".join(f"`{t.split('::', 1)[-1]}`" for t in entry.tests)
            lines.append(
                f"| {practice.id} | {_cell(practice.title)} | {entry.status} | "
                f"{_cell(evidence)} | {_cell(code)} | {_cell(tests)} |"
            )
    return "\n".join(lines) + "\n"


def render_json(entries: dict[str, Entry]) -> str:
    """The scorecard for tools: counts per pillar and status, then every practice."""
    card = Scorecard.of(entries)
    doc: dict[str, Any] = {
        "statuses": list(STATUSES),
        "totals": card.totals(),
        "pillars": [
            {"prefix": p.prefix, "name": p.name, "counts": p.counts, "total": p.total}
            for p in card.pillars()
        ],
        "practices": [
            {"id": practice.id, **entry.model_dump(exclude_none=True)}
            for practice, entry in card.rows
        ],
    }
    return json.dumps(doc, indent=2) + "\n"


def render(entries: dict[str, Entry], fmt: Format) -> str:
    """The scorecard in ``fmt``: ``md``, ``html`` or ``json``."""
    if fmt == "md":
        return render_markdown(entries)
    if fmt == "html":
        return render_html(Scorecard.of(entries))
    if fmt == "json":
        return render_json(entries)
    raise InvalidInputError(f"unknown format {fmt!r}: md, html or json")


def _markers(text: str) -> tuple[int, int]:
    """Start of BEGIN and end of END in ``text``; InvalidInputError unless each occurs once, in
    that order."""
    if text.count(BEGIN) != 1 or text.count(END) != 1:
        raise InvalidInputError(f"README.md must hold {BEGIN} and {END} once each")
    start, end = text.index(BEGIN), text.index(END) + len(END)
    if end < start:
        raise InvalidInputError(f"README.md holds {END} before {BEGIN}")
    return start, end


def updated_readme(text: str, entries: dict[str, Entry]) -> str:
    """``text`` with the section between the markers replaced by the generated one."""
    start, end = _markers(text)
    return text[:start] + readme_section(entries) + text[end:]


def readme_problem(path: Path, entries: dict[str, Entry]) -> str | None:
    """Why the README at ``path`` does not hold the section ``entries`` give (None: it does)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        return f"cannot read {path.name}: {exc.strerror or exc}"
    try:
        start, end = _markers(text)
    except InvalidInputError as exc:
        return str(exc)
    if text[start:end] != readme_section(entries):
        return f"{path.name}'s lens section is out of date: run `driftloop lens readme`"
    return None
