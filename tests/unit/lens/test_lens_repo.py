"""driftloop's own lens.yaml: complete, every reference resolving, the README section current.

This is how ``make test`` runs ``driftloop lens check``: a renamed test or a deleted module named
in lens.yaml, or an edit of lens.yaml without ``driftloop lens readme``, fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from driftloop.lens.check import check
from driftloop.lens.document import load_document
from driftloop.lens.practices import PILLARS, PRACTICES
from driftloop.lens.report import readme_problem

ROOT = Path(__file__).resolve().parents[3]
#: The project's copy of the lens's practice list (outside the repository, in the planning
#: folder next to the checkout); the package embeds the list, this only cross-checks it.
LENS_MD = ROOT.parent / "shared" / "LENS.md"


def test_the_repository_lens_file_has_no_problem() -> None:
    problems = check(ROOT)
    assert problems == [], "\n".join(str(p) for p in problems)


def test_every_practice_of_the_lens_has_exactly_one_entry() -> None:
    doc = load_document(ROOT / "lens.yaml")
    assert doc.problems == []
    assert list(doc.entries) == [p.id for p in PRACTICES]
    assert len(doc.entries) == 78


def test_the_embedded_list_has_the_lens_numbering() -> None:
    per_pillar = {prefix: [p.id for p in PRACTICES if p.prefix == prefix] for prefix in PILLARS}
    sizes = {prefix: len(ids) for prefix, ids in per_pillar.items()}
    assert sizes == {"MLOE": 13, "MLSEC": 13, "MLREL": 13, "MLPER": 17, "MLCOST": 22}
    for prefix, ids in per_pillar.items():
        assert ids == [f"{prefix}-{n:02d}" for n in range(1, len(ids) + 1)]


def test_the_embedded_list_matches_the_projects_lens_document() -> None:
    if not LENS_MD.is_file():
        pytest.skip(f"{LENS_MD} is not here (it lives outside the repository) to compare with")
    rows = re.findall(r"^\|\s*(ML[A-Z]+-\d\d)\s*\|\s*([^|]+?)\s*\|", LENS_MD.read_text(), re.M)
    assert [(p.id, p.title) for p in PRACTICES] == rows


def test_breaking_a_reference_in_the_real_file_fails_the_check(tmp_path: Path) -> None:
    text = (ROOT / "lens.yaml").read_text()
    node_id = "tests/unit/training/test_lineage_refs.py::test_references_parse"
    assert text.count(node_id) == 1
    broken = tmp_path / "lens.yaml"
    broken.write_text(text.replace(node_id, node_id + "_renamed"))
    problems = check(ROOT, lens_path=broken)
    assert [str(p) for p in problems] == [
        "MLOE-05: test 'test_references_parse_renamed' is not in "
        "tests/unit/training/test_lineage_refs.py"
    ]
    code = "platform/driftloop/training/lineage.py::lineage"
    broken.write_text(text.replace(code, "platform/driftloop/training/lineages.py::lineage"))
    assert [str(p) for p in check(ROOT, lens_path=broken)] == [
        "MLOE-05: code 'platform/driftloop/training/lineages.py' does not exist"
    ]


def test_a_status_changed_without_regenerating_the_readme_is_caught() -> None:
    entries = dict(load_document(ROOT / "lens.yaml").entries)
    assert readme_problem(ROOT / "README.md", entries) is None
    first = next(pid for pid, e in entries.items() if e.status == "realised")
    entries[first] = entries[first].model_copy(update={"status": "partial"})
    assert readme_problem(ROOT / "README.md", entries) == (
        "README.md's lens section is out of date: run `driftloop lens readme`"
    )
