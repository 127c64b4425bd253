"""The import-linter contract "fastapi" bites: FastAPI/Starlette only in ``serving.app`` and
``serving.routes``, the transport-free core knows no HTTP.

``lint-imports`` runs on a temporary copy of the source (platform/, serving/, flows/ and
pyproject.toml): once as it is (kept), once with a core module importing FastAPI or Starlette
(broken). grimp finds the packages through sys.path, so the copy goes first on PYTHONPATH and is
the working directory (lint-imports puts the cwd first on sys.path too)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
LINT_IMPORTS = shutil.which("lint-imports", path=str(Path(sys.executable).parent))


@pytest.fixture
def source_copy(tmp_path: Path) -> Path:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for folder in ("platform", "serving", "flows"):
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=ignore)
    shutil.copy2(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    assert LINT_IMPORTS is not None
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root / "platform"), str(root)])}
    return subprocess.run(
        [
            LINT_IMPORTS,
            "--config",
            str(root / "pyproject.toml"),
            "--contract",
            "fastapi",
            "--no-cache",
        ],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.skipif(LINT_IMPORTS is None, reason="import-linter (dev extra) is not installed")
@pytest.mark.parametrize(
    ("module", "statement"),
    [
        ("dataplane", "import fastapi"),
        ("codec", "from starlette.responses import Response"),
    ],
)
def test_core_module_importing_fastapi_breaks_the_contract(
    source_copy: Path, module: str, statement: str
) -> None:
    kept = _lint(source_copy)
    assert kept.returncode == 0, kept.stdout + kept.stderr
    assert "KEPT" in kept.stdout

    path = source_copy / "serving" / f"{module}.py"
    path.write_text(path.read_text() + f"\n{statement}  # noqa: E402, F401\n")
    broken = _lint(source_copy)
    assert broken.returncode != 0, broken.stdout
    assert "BROKEN" in broken.stdout
    assert f"serving.{module} -> {statement.split()[1].split('.')[0]}" in broken.stdout
