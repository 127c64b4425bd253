"""A small repository in a temporary folder: a module, a YAML file, a test file, a template, a
README with the lens markers and a lens.yaml with every practice of the lens. Each test breaks
one thing and looks for the problem ``driftloop lens check`` names."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from driftloop.lens.document import Entry
from driftloop.lens.practices import PRACTICES
from driftloop.lens.report import updated_readme

MODULE = '''"""A module the lens names."""

LIMIT = 3


def work() -> int:
    return LIMIT


class Thing:
    size: int = 1

    def run(self) -> None:
        pass
'''

TESTS = """import pytest


def helper():
    return 1


def test_alpha():
    assert helper() == 1


@pytest.mark.parametrize("case", [1, 2])
def test_param(case):
    assert case


class TestGroup:
    def test_beta(self):
        assert True
"""

README = """# project

Intro.

<!-- lens:begin -->
<!-- lens:end -->

## After
"""


@dataclass
class FakeRepo:
    root: Path
    practices: dict[str, dict[str, Any]]

    def write(self, practices: dict[str, dict[str, Any]] | None = None) -> Path:
        """Write lens.yaml (``practices``, default the current ones) and return its path."""
        data = {"practices": self.practices if practices is None else practices}
        path = self.root / "lens.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False, width=200))
        return path

    def regenerate_readme(self) -> None:
        entries = {pid: Entry.model_validate(raw) for pid, raw in self.practices.items()}
        readme = self.root / "README.md"
        readme.write_text(updated_readme(readme.read_text(), entries))


def realised(title: str, pillar: str) -> dict[str, Any]:
    return {
        "title": title,
        "pillar": pillar,
        "status": "realised",
        "evidence": "work() does it.",
        "code": ["pkg/mod.py::work"],
        "tests": ["tests/test_x.py::test_alpha"],
    }


def build_fake_repo(tmp_path: Path) -> FakeRepo:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "mod.py").write_text(MODULE)
    (tmp_path / "conf.yaml").write_text("retention:\n  days: 90\n")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_x.py").write_text(TESTS)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "policy.md").write_text("# A template\n")
    (tmp_path / "README.md").write_text(README)
    repo = FakeRepo(tmp_path, {p.id: realised(p.title, p.pillar) for p in PRACTICES})
    repo.write()
    repo.regenerate_readme()
    return repo
