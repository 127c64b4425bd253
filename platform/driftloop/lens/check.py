"""``driftloop lens check``: every problem of ``lens.yaml``, one line each, nothing run.

A practice is *realised* only when code does it and a test proves it, so a ``realised`` entry
without tests is a problem, as is any reference that does not resolve: a renamed test or a
deleted module turns the scorecard false, and ``make test`` fails until the file says what is
true again. The README's generated section must match the file too.
"""

from __future__ import annotations

from pathlib import Path

from driftloop.lens.document import LENS_FILE, Entry, LensDocument, Problem, load_document
from driftloop.lens.practices import BY_ID, PRACTICES
from driftloop.lens.references import code_problem, node_id_problem
from driftloop.lens.report import README_FILE, readme_problem

#: Statuses that claim something exists, so they must name the code that does it.
CLAIMS_CODE = ("realised", "partial")


def _entry_problems(root: Path, pid: str, entry: Entry) -> list[str]:
    practice = BY_ID[pid]
    out = []
    if entry.title != practice.title:
        out.append(f"title {entry.title!r} is not the lens's {practice.title!r}")
    if entry.pillar != practice.pillar:
        out.append(f"pillar {entry.pillar!r} is not {practice.pillar!r}")
    if entry.status == "realised" and not entry.tests:
        out.append("realised but names no test that proves it (say partial, or add the test)")
    if entry.status in CLAIMS_CODE and not entry.code:
        out.append(f"{entry.status} but names no code that does it")
    if entry.status == "missing" and (entry.code or entry.tests):
        out.append("missing but names code or tests: say partial when some of it exists")
    if entry.status == "not applicable" and not (entry.reason or "").strip():
        out.append("not applicable needs a reason")
    if entry.status != "not applicable" and entry.reason is not None:
        out.append("a reason is only for not applicable (say it in evidence)")
    if entry.status == "organisational" and not entry.template:
        out.append("organisational needs the template that helps people do it")
    if entry.template is not None:
        problem = code_problem(root, entry.template)
        if problem is not None:
            out.append(problem.replace("code ", "template ", 1))
    out.extend(p for ref in entry.code if (p := code_problem(root, ref)) is not None)
    out.extend(p for ref in entry.tests if (p := node_id_problem(root, ref)) is not None)
    return out


def document_problems(root: Path, doc: LensDocument) -> list[Problem]:
    """What is wrong with the loaded ``doc`` against the lens and the repository at ``root``."""
    problems = list(doc.problems)
    if not doc.readable:
        return problems
    unknown = [pid for pid in doc.entries if pid not in BY_ID]
    problems.extend(Problem(pid, "is not a practice id of the lens") for pid in unknown)
    broken = {p.practice for p in doc.problems}
    for practice in PRACTICES:
        entry = doc.entries.get(practice.id)
        if entry is None:
            if practice.id not in broken:
                problems.append(Problem(practice.id, f"is missing from {LENS_FILE}"))
            continue
        problems.extend(Problem(practice.id, m) for m in _entry_problems(root, practice.id, entry))
    return problems


def check(root: Path, lens_path: Path | None = None, readme: bool = True) -> list[Problem]:
    """Every problem of ``lens_path`` (default ``root/lens.yaml``) against the lens and the
    repository at ``root``; with ``readme``, also whether README.md's generated section is the
    one the file gives. Empty: the scorecard is true as far as files can show."""
    doc = load_document(lens_path or root / LENS_FILE)
    problems = document_problems(root, doc)
    complete = set(doc.entries) == set(BY_ID)
    if readme and complete:
        stale = readme_problem(root / README_FILE, doc.entries)
        if stale:
            problems.append(Problem(None, stale))
    return problems
