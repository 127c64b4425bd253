"""``lens.yaml``: one entry per practice id, read strictly.

::

    practices:
      MLOE-05:
        title: Establish a lineage tracker system      # as the lens states it
        pillar: Operational excellence
        status: partial         # realised | partial | organisational | not applicable | missing
        evidence: What in the code does it, in a sentence or two (what is absent, when missing).
        code: [platform/driftloop/training/lineage.py::lineage]     # path or path::symbol
        tests: [tests/unit/training/test_lineage_refs.py::test_references_parse]
        reason: ...             # not applicable only: why the practice does not apply
        template: docs/lens/... # organisational: the template that helps people do it

The lens's own kinds are four (realised, partial, not applicable, organisational); ``missing`` is
a fifth, for a practice nothing in the repository does yet, so that the file can say so instead
of leaving the id out. A duplicated key anywhere (two entries for one id, two ``status`` in one
entry) is a problem, not silently the last one: YAML itself would keep only the last.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

Status = Literal["realised", "partial", "organisational", "not applicable", "missing"]
#: Statuses in the order reports show them.
STATUSES: tuple[str, ...] = get_args(Status)
LENS_FILE = "lens.yaml"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the lens file, as one readable line (``practice``: the id it is about,
    None for the file as a whole)."""

    practice: str | None
    message: str

    def __str__(self) -> str:
        return f"{self.practice}: {self.message}" if self.practice else self.message


class Entry(BaseModel):
    """What ``lens.yaml`` says about one practice."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    title: str = Field(min_length=1, description="The practice's title as the lens states it.")
    pillar: str = Field(min_length=1, description="The lens pillar of the id's prefix.")
    status: Status
    evidence: str = Field(
        min_length=1, description="What realises it (or, when missing, what is absent)."
    )
    code: list[str] = Field(default_factory=list, description="Paths or path::symbol.")
    tests: list[str] = Field(default_factory=list, description="pytest node ids that prove it.")
    reason: str | None = Field(None, description="Why it does not apply (not applicable only).")
    template: str | None = Field(None, description="Template that helps (organisational).")


@dataclass
class LensDocument:
    """The entries of ``lens.yaml`` that parsed, in file order, and the problems of reading it
    (``readable``: False when the file as a whole could not be read as a lens file)."""

    entries: dict[str, Entry] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    readable: bool = True

    def refuse(self, message: str) -> LensDocument:
        """Mark the whole file unreadable for ``message``."""
        self.problems.append(Problem(None, message))
        self.readable = False
        return self


def _duplicates(node: yaml.Node, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], int]]:
    """``(path to the key, line)`` of every mapping key that appears twice in its mapping."""
    out: list[tuple[tuple[str, ...], int]] = []
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen:
                out.append(((*path, key), key_node.start_mark.line + 1))
            seen.add(key)
            out.extend(_duplicates(value_node, (*path, key)))
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            out.extend(_duplicates(item, path))
    return out


def parse_yaml(text: str) -> tuple[Any, list[tuple[tuple[str, ...], int]]]:
    """The YAML document and its duplicated keys as ``(path, line)`` (YAML itself would keep
    the last value of a duplicated key without a word)."""
    node = yaml.compose(text, Loader=yaml.SafeLoader)
    duplicates = _duplicates(node) if node is not None else []
    return yaml.safe_load(text), duplicates


def _describe(error: ValidationError) -> list[str]:
    out = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "entry"
        out.append(f"{where}: {item['msg']}")
    return out


def load_document(path: Path) -> LensDocument:
    """Read ``path``; every problem of its shape is returned, none raised."""
    doc = LensDocument()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        return doc.refuse(f"cannot read {path.name}: {exc.strerror or exc}")
    try:
        data, duplicates = parse_yaml(text)
    except yaml.YAMLError as exc:
        return doc.refuse(f"{path.name} is not valid YAML: {' '.join(str(exc).split())}")
    ambiguous: set[str] = set()  # entries with a duplicated key: which value is meant?
    for keys, line in duplicates:
        about = keys[1] if len(keys) > 1 and keys[0] == "practices" else None
        if about is not None:
            ambiguous.add(about)
        doc.problems.append(
            Problem(about, f"{path.name} line {line}: key {keys[-1]!r} appears more than once")
        )
    if not isinstance(data, dict) or set(data) != {"practices"}:
        return doc.refuse(f"{path.name} must hold one key, 'practices' (a mapping id -> entry)")
    practices = data["practices"]
    if not isinstance(practices, dict):
        return doc.refuse("'practices' must map each practice id to its entry")
    for key, raw in practices.items():
        pid = str(key)
        if pid in ambiguous:
            continue
        if not isinstance(raw, dict):
            doc.problems.append(Problem(pid, "the entry must be a mapping of fields"))
            continue
        try:
            doc.entries[pid] = Entry.model_validate(raw)
        except ValidationError as exc:
            doc.problems.extend(Problem(pid, message) for message in _describe(exc))
    return doc
