"""``driftloop lens check|report|readme`` on a repository in a temporary folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from lens_repo import FakeRepo

from driftloop.cli import main


def test_check_passes_quietly_on_a_true_file(
    fake_repo: FakeRepo, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["lens", "check", "--root", str(fake_repo.root)])
    out = capsys.readouterr()
    assert out.out == "lens check: 78 practices, every reference resolves\n"
    assert out.err == ""


def test_check_exits_1_with_one_line_per_problem(
    fake_repo: FakeRepo, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_repo.practices["MLOE-04"]["code"] = ["pkg/gone.py"]
    fake_repo.practices["MLSEC-02"]["tests"] = []
    del fake_repo.practices["MLCOST-22"]
    fake_repo.write()
    with pytest.raises(SystemExit) as exc:
        main(["lens", "check", "--root", str(fake_repo.root)])
    assert exc.value.code == 1
    assert capsys.readouterr().err.splitlines() == [
        "lens: MLOE-04: code 'pkg/gone.py' does not exist",
        "lens: MLSEC-02: realised but names no test that proves it (say partial, or add the test)",
        "lens: MLCOST-22: is missing from lens.yaml",
        "lens check: 3 problem(s) in lens.yaml",
    ]


def test_check_can_leave_the_readme_out(
    fake_repo: FakeRepo, capsys: pytest.CaptureFixture[str]
) -> None:
    (fake_repo.root / "README.md").write_text("# no section\n")
    main(["lens", "check", "--root", str(fake_repo.root), "--no-readme"])
    with pytest.raises(SystemExit):
        main(["lens", "check", "--root", str(fake_repo.root)])
    assert "must hold <!-- lens:begin -->" in capsys.readouterr().err


def test_report_writes_each_format(
    fake_repo: FakeRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "lens.json"
    main(["lens", "report", "--format", "json", "--out", str(out), "--root", str(fake_repo.root)])
    assert capsys.readouterr().out == f"wrote {out}\n"
    assert json.loads(out.read_text())["totals"]["realised"] == 78
    main(["lens", "report", "--format", "md", "--root", str(fake_repo.root)])
    assert (
        "| **all** | **78** | **0** | **0** | **0** | **0** | **78** |" in capsys.readouterr().out
    )
    main(["lens", "report", "--format", "html", "--root", str(fake_repo.root)])
    assert capsys.readouterr().out.startswith("<!DOCTYPE html>")


def test_report_warns_about_problems_and_refuses_an_unreadable_file(
    fake_repo: FakeRepo, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_repo.practices["MLOE-04"]["code"] = ["pkg/gone.py"]
    fake_repo.write()
    main(["lens", "report", "--format", "md", "--root", str(fake_repo.root)])
    assert capsys.readouterr().err == (
        "warning: 1 problem(s) in lens.yaml (run `driftloop lens check`)\n"
    )
    (fake_repo.root / "lens.yaml").write_text("practices: [\n")
    with pytest.raises(SystemExit) as exc:
        main(["lens", "report", "--root", str(fake_repo.root)])
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("error: lens.yaml is not valid YAML")
    assert len(err.splitlines()) == 1


def test_report_refuses_an_unknown_format(
    fake_repo: FakeRepo, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["lens", "report", "--format", "xml", "--root", str(fake_repo.root)])
    assert exc.value.code == 1
    assert capsys.readouterr().err == "error: --format 'xml': use md, html or json\n"


def test_readme_rewrites_the_section_only_when_it_changed(
    fake_repo: FakeRepo, capsys: pytest.CaptureFixture[str]
) -> None:
    readme = fake_repo.root / "README.md"
    main(["lens", "readme", "--root", str(fake_repo.root)])
    assert capsys.readouterr().out == "README.md: the lens section is up to date\n"
    fake_repo.practices["MLPER-16"] = {
        **fake_repo.practices["MLPER-16"],
        "status": "missing",
        "code": [],
        "tests": [],
    }
    fake_repo.write()
    before = readme.read_text()
    main(["lens", "readme", "--root", str(fake_repo.root)])
    assert capsys.readouterr().out == "README.md: lens section rewritten from lens.yaml\n"
    after = readme.read_text()
    assert "- Missing: MLPER-16." in after
    assert after.split("<!-- lens:begin -->")[0] == before.split("<!-- lens:begin -->")[0]
    assert after.split("<!-- lens:end -->")[1] == before.split("<!-- lens:end -->")[1]
    main(["lens", "check", "--root", str(fake_repo.root)])
