"""``check``: every way lens.yaml can stop telling the truth is one problem naming the practice."""

from __future__ import annotations

from typing import Any

import pytest
from lens_repo import FakeRepo

from driftloop.lens.check import check
from driftloop.lens.document import Problem


def about(problems: list[Problem], practice: str | None) -> list[str]:
    return [p.message for p in problems if p.practice == practice]


def with_entry(repo: FakeRepo, pid: str, **changes: Any) -> list[Problem]:
    """Problems of the fake repo after changing (None: removing) fields of ``pid``'s entry."""
    entry = dict(repo.practices[pid])
    for key, value in changes.items():
        if value is None:
            entry.pop(key, None)
        else:
            entry[key] = value
    repo.practices[pid] = entry
    repo.write()
    return check(repo.root, readme=False)


def test_a_complete_file_whose_references_resolve_has_no_problem(fake_repo: FakeRepo) -> None:
    assert check(fake_repo.root) == []


@pytest.mark.parametrize(
    ("reference", "why"),
    [
        ("pkg/gone.py", "'pkg/gone.py' does not exist"),
        ("pkg/mod.py::gone", "'pkg/mod.py' defines no 'gone'"),
        ("pkg/mod.py::Thing.gone", "defines no 'Thing.gone'"),
        ("conf.yaml::housekeeping", "'conf.yaml' does not mention 'housekeeping'"),
        ("pkg::work", "a folder has no symbols"),
        ("pkg/mod.py::", "names an empty symbol"),
        ("../outside.py", "is not a path inside the repository"),
        ("/etc/hostname", "is not a path inside the repository"),
    ],
)
def test_a_code_reference_that_does_not_resolve_is_named_with_its_practice(
    fake_repo: FakeRepo, reference: str, why: str
) -> None:
    problems = with_entry(fake_repo, "MLOE-05", code=["pkg/mod.py::work", reference])
    assert [p.practice for p in problems] == ["MLOE-05"]
    assert why in problems[0].message


def test_symbols_resolve_in_python_and_other_files_and_folders_count_as_code(
    fake_repo: FakeRepo,
) -> None:
    code = ["pkg/mod.py::Thing.run", "pkg/mod.py::Thing.size", "pkg/mod.py::LIMIT"]
    code += ["pkg/mod.py", "pkg", "conf.yaml::retention"]
    assert with_entry(fake_repo, "MLOE-05", code=code) == []


@pytest.mark.parametrize(
    ("node_id", "why"),
    [
        ("tests/test_x.py::test_gone", "'test_gone' is not in tests/test_x.py"),
        ("tests/test_x.py::TestGroup::test_gone", "'TestGroup::test_gone' is not in"),
        ("tests/test_x.py::helper", "'helper' is not in tests/test_x.py"),
        ("tests/test_gone.py::test_alpha", "'tests/test_gone.py' does not exist"),
        ("tests/test_x.py", "must name a test"),
        ("pkg/mod.py::work", "is not a Python file under tests/"),
    ],
)
def test_a_test_that_does_not_exist_is_named_with_its_practice(
    fake_repo: FakeRepo, node_id: str, why: str
) -> None:
    problems = with_entry(fake_repo, "MLREL-08", tests=["tests/test_x.py::test_alpha", node_id])
    assert [p.practice for p in problems] == ["MLREL-08"]
    assert why in problems[0].message


def test_class_and_parametrised_test_ids_resolve(fake_repo: FakeRepo) -> None:
    tests = ["tests/test_x.py::TestGroup::test_beta", "tests/test_x.py::test_param[1]"]
    assert with_entry(fake_repo, "MLREL-08", tests=tests) == []


def test_a_practice_left_out_is_named(fake_repo: FakeRepo) -> None:
    del fake_repo.practices["MLSEC-06"]
    fake_repo.write()
    problems = check(fake_repo.root)
    assert about(problems, "MLSEC-06") == ["is missing from lens.yaml"]
    assert len(problems) == 1  # no README complaint on top: the file is incomplete


def test_a_practice_named_twice_is_named(fake_repo: FakeRepo) -> None:
    path = fake_repo.write()
    text = path.read_text()
    start = text.index("  MLOE-04:")
    end = text.index("  MLOE-05:")
    path.write_text(text + text[start:end])
    problems = check(fake_repo.root)
    assert [(p.practice, "appears more than once" in p.message) for p in problems] == [
        ("MLOE-04", True)
    ]


def test_a_key_twice_inside_an_entry_is_a_problem(fake_repo: FakeRepo) -> None:
    path = fake_repo.write()
    text = path.read_text()
    marker = "    status: realised\n"
    path.write_text(text.replace(marker, marker + "    status: partial\n", 1))
    (problem,) = check(fake_repo.root)
    assert problem.practice == "MLOE-01"
    assert problem.message == "lens.yaml line 6: key 'status' appears more than once"


def test_an_unknown_id_and_a_wrong_title_or_pillar_are_named(fake_repo: FakeRepo) -> None:
    fake_repo.practices["MLOE-99"] = dict(fake_repo.practices["MLOE-01"])
    fake_repo.practices["MLOE-01"] = {**fake_repo.practices["MLOE-01"], "title": "Skills"}
    fake_repo.practices["MLOE-02"] = {**fake_repo.practices["MLOE-02"], "pillar": "Security"}
    fake_repo.write()
    problems = check(fake_repo.root)
    assert about(problems, "MLOE-99") == ["is not a practice id of the lens"]
    assert about(problems, "MLOE-01")[0].startswith("title 'Skills' is not the lens's")
    assert about(problems, "MLOE-02") == ["pillar 'Security' is not 'Operational excellence'"]


def test_a_realised_practice_without_a_test_is_named(fake_repo: FakeRepo) -> None:
    problems = with_entry(fake_repo, "MLCOST-03", tests=None)
    assert about(problems, "MLCOST-03") == [
        "realised but names no test that proves it (say partial, or add the test)"
    ]


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"status": "partial", "code": None}, "partial but names no code that does it"),
        ({"status": "not applicable"}, "not applicable needs a reason"),
        ({"status": "not applicable", "reason": "  "}, "not applicable needs a reason"),
        ({"reason": "why not"}, "a reason is only for not applicable"),
        ({"status": "organisational"}, "organisational needs the template"),
        (
            {"status": "organisational", "template": "docs/gone.md"},
            "template 'docs/gone.md' does not exist",
        ),
        ({"status": "missing"}, "missing but names code or tests"),
        ({"status": "done"}, "status: Input should be"),
        ({"owner": "me"}, "owner: Extra inputs are not permitted"),
        ({"evidence": ""}, "evidence: String should have at least 1 character"),
    ],
)
def test_each_status_rule_names_the_practice(
    fake_repo: FakeRepo, changes: dict[str, Any], why: str
) -> None:
    problems = with_entry(fake_repo, "MLPER-16", **changes)
    messages = about(problems, "MLPER-16")
    assert any(why in m for m in messages), messages
    assert all(p.practice == "MLPER-16" for p in problems)


def test_statuses_that_need_no_test_pass_with_what_they_need(fake_repo: FakeRepo) -> None:
    base = {"code": None, "tests": None}
    fake_repo.practices["MLSEC-07"] = {
        **fake_repo.practices["MLSEC-07"],
        "status": "not applicable",
        "reason": "no pre-trained weights",
    }
    fake_repo.practices["MLOE-01"] = {
        **fake_repo.practices["MLOE-01"],
        "status": "organisational",
        "template": "docs/policy.md",
    }
    fake_repo.practices["MLPER-16"] = {**fake_repo.practices["MLPER-16"], "status": "missing"}
    fake_repo.practices["MLOE-03"] = {**fake_repo.practices["MLOE-03"], "status": "partial"}
    for pid in ("MLSEC-07", "MLOE-01", "MLPER-16"):
        for key in base:
            fake_repo.practices[pid].pop(key)
    fake_repo.practices["MLOE-03"].pop("tests")
    fake_repo.write()
    assert check(fake_repo.root, readme=False) == []


def test_a_file_that_is_not_yaml_or_not_the_shape_is_one_problem(fake_repo: FakeRepo) -> None:
    path = fake_repo.root / "lens.yaml"
    path.write_text("practices: [unclosed\n")
    (problem,) = check(fake_repo.root)
    assert problem.practice is None
    assert problem.message.startswith("lens.yaml is not valid YAML")
    path.write_text("MLOE-01: {}\n")
    (problem,) = check(fake_repo.root)
    assert "must hold one key, 'practices'" in problem.message
    path.unlink()
    (problem,) = check(fake_repo.root)
    assert problem.message.startswith("cannot read lens.yaml")


def test_a_readme_section_out_of_step_with_the_file_is_a_problem(fake_repo: FakeRepo) -> None:
    fake_repo.practices["MLOE-04"] = {**fake_repo.practices["MLOE-04"], "status": "partial"}
    fake_repo.write()
    (problem,) = check(fake_repo.root)
    assert str(problem) == "README.md's lens section is out of date: run `driftloop lens readme`"
    fake_repo.regenerate_readme()
    assert check(fake_repo.root) == []
    (fake_repo.root / "README.md").write_text("# no markers\n")
    (problem,) = check(fake_repo.root)
    assert "must hold <!-- lens:begin --> and <!-- lens:end --> once each" in problem.message
