"""The scorecard in Markdown, HTML and JSON, and the README section, with the right counts."""

from __future__ import annotations

import json
from typing import Any

import pytest

from driftloop.errors import InvalidInputError
from driftloop.lens.document import Entry
from driftloop.lens.practices import PRACTICES
from driftloop.lens.report import BEGIN, END, readme_section, render, updated_readme
from driftloop.lens.scorecard import Scorecard

#: Statuses given by position in each pillar: MLOE has 13 practices, so 5 realised, 3 partial,
#: 2 organisational, 2 not applicable and 1 missing; and so on.
CYCLE = [
    "realised",
    "partial",
    "organisational",
    "not applicable",
    "missing",
    "realised",
    "partial",
    "realised",
    "organisational",
    "not applicable",
    "realised",
    "partial",
    "realised",
]


def entry(status: str, title: str, pillar: str, evidence: str = "Does it.") -> Entry:
    fields: dict[str, Any] = {"title": title, "pillar": pillar, "status": status}
    fields["evidence"] = evidence
    if status in ("realised", "partial"):
        fields["code"] = ["pkg/mod.py::work"]
        fields["tests"] = ["tests/test_x.py::test_alpha"]
    if status == "not applicable":
        fields["reason"] = "no such thing here"
    if status == "organisational":
        fields["template"] = "docs/policy.md"
    return Entry.model_validate(fields)


def entries() -> dict[str, Entry]:
    out = {}
    for p in PRACTICES:
        n = int(p.id.split("-")[1]) - 1
        out[p.id] = entry(CYCLE[n % len(CYCLE)], p.title, p.pillar)
    return out


def expected(size: int) -> dict[str, int]:
    counts = dict.fromkeys(["realised", "partial", "organisational", "not applicable"], 0)
    counts["missing"] = 0
    for n in range(size):
        counts[CYCLE[n % len(CYCLE)]] += 1
    return counts


SIZES = {"MLOE": 13, "MLSEC": 13, "MLREL": 13, "MLPER": 17, "MLCOST": 22}


def test_counts_per_pillar_and_status() -> None:
    card = Scorecard.of(entries())
    assert {p.prefix: p.counts for p in card.pillars()} == {
        prefix: expected(size) for prefix, size in SIZES.items()
    }
    assert card.totals() == {
        "realised": 29,
        "partial": 18,
        "organisational": 13,
        "not applicable": 12,
        "missing": 6,
    }


def test_a_scorecard_needs_every_practice() -> None:
    partial = entries()
    del partial["MLCOST-22"]
    with pytest.raises(InvalidInputError, match="no entry for MLCOST-22"):
        Scorecard.of(partial)


def test_json_holds_the_counts_and_every_practice() -> None:
    doc = json.loads(render(entries(), "json"))
    assert doc["totals"]["realised"] == 29
    pillars = {p["prefix"]: p for p in doc["pillars"]}
    assert pillars["MLPER"]["counts"] == expected(17)
    assert pillars["MLPER"]["total"] == 17
    assert [p["id"] for p in doc["practices"]] == [p.id for p in PRACTICES]
    na = next(p for p in doc["practices"] if p["status"] == "not applicable")
    assert na["reason"] == "no such thing here"


def test_markdown_has_the_counts_table_and_a_row_per_practice() -> None:
    text = render(entries(), "md")
    assert "| Security (MLSEC) | 5 | 3 | 2 | 2 | 1 | 13 |" in text
    assert "| Cost optimization (MLCOST) | 8 | 5 | 4 | 3 | 2 | 22 |" in text
    assert "| **all** | **29** | **18** | **13** | **12** | **6** | **78** |" in text
    for p in PRACTICES:
        assert f"| {p.id} | {p.title} |" in text


def test_markdown_cells_keep_pipes_and_line_breaks_out() -> None:
    all_entries = entries()
    all_entries["MLOE-01"] = entry("realised", PRACTICES[0].title, PRACTICES[0].pillar, "a | b\nc")
    text = render(all_entries, "md")
    assert "| a \\| b c |" in text


def test_html_is_one_page_with_counts_and_escaped_text() -> None:
    all_entries = entries()
    all_entries["MLOE-01"] = entry(  # realised already: the counts stay
        "realised", PRACTICES[0].title, PRACTICES[0].pillar, "<script>x</script> `cmd`"
    )
    page = render(all_entries, "html")
    assert page.startswith("<!DOCTYPE html>")
    assert "<script>" not in page
    assert "&lt;script&gt;x&lt;/script&gt; <code>cmd</code>" in page
    assert "http://" not in page
    assert "https://" not in page  # nothing fetched: no CDN, fonts or scripts
    assert '<tr class="total"><td>all</td><td class="n">29</td>' in page
    assert '<h2 id="MLCOST">Cost optimization (MLCOST)</h2>' in page
    assert "8 realised · 5 partial · 4 organisational · 3 not applicable · 2 missing" in page
    for p in PRACTICES:
        assert f'<tr id="{p.id}">' in page


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="unknown format 'xml'"):
        render(entries(), "xml")  # type: ignore[arg-type]


def test_the_readme_section_holds_the_counts_and_lists_what_is_not_realised() -> None:
    section = readme_section(entries())
    assert section.startswith(BEGIN)
    assert section.endswith(END)
    assert "| Reliability (MLREL) | 5 | 3 | 2 | 2 | 1 | 13 |" in section
    assert "- Missing: MLOE-05, MLSEC-05, MLREL-05, MLPER-05, MLCOST-05, MLCOST-18." in section
    assert all(len(line) <= 100 for line in section.splitlines() if not line.startswith("|"))


def test_updating_the_readme_changes_only_the_section() -> None:
    text = f"# title\n\nbefore\n\n{BEGIN}\nold\n{END}\n\nafter\n"
    new = updated_readme(text, entries())
    assert new.startswith("# title\n\nbefore\n\n" + BEGIN)
    assert new.endswith(END + "\n\nafter\n")
    assert "old" not in new
    assert updated_readme(new, entries()) == new


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("no markers\n", "must hold"),
        (f"{BEGIN}\n{BEGIN}\n{END}\n", "must hold"),
        (f"{END}\n{BEGIN}\n", "before"),
    ],
)
def test_a_readme_without_one_pair_of_markers_is_refused(text: str, why: str) -> None:
    with pytest.raises(InvalidInputError, match=why):
        updated_readme(text, entries())
