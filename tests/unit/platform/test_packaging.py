"""The layout promises: `platform/` is a source root, not a package."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_platform_folder_has_no_init() -> None:
    assert (ROOT / "platform" / "driftloop").is_dir()
    assert not (ROOT / "platform" / "__init__.py").exists()


def test_standard_library_platform_still_imports_from_repo_root() -> None:
    # Run from the repo root, where a `platform` folder sits on sys.path[0].
    code = (
        "import platform, driftloop, flows, serving;"
        "print(platform.python_version());"
        "assert hasattr(platform, 'system') and platform.__file__.endswith('platform.py')"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == ".".join(map(str, sys.version_info[:3]))


def test_import_packages_resolve_to_the_checkout() -> None:
    for name, rel in (
        ("driftloop", "platform/driftloop"),
        ("flows", "flows"),
        ("serving", "serving"),
    ):
        module = importlib.import_module(name)
        assert Path(module.__file__ or "").resolve().parent == ROOT / rel


def test_ci_runs_make_test_and_readme_opens_with_the_two_commands() -> None:
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    first_block = readme.split("```")[1]
    assert [line for line in first_block.splitlines()[1:] if line.strip()] == [
        "make demo",
        "make test",
    ]
