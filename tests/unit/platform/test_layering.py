"""The code's shape, checked: an import of the project's own modules inside a function must say
why (a comment on its line or the line above: start-up cost, optional dependency, a package's
own sub-modules), because a hidden import is how layering violations and cycles creep back in.
The layers themselves are import-linter contracts (pyproject.toml), run by ``make lint``."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
PRODUCT = [ROOT / "platform" / "driftloop", ROOT / "serving", ROOT / "flows"]
OWN = ("driftloop", "serving", "flows")


def _own(node: ast.Import | ast.ImportFrom) -> bool:
    if isinstance(node, ast.ImportFrom):
        return node.level == 0 and (node.module or "").split(".")[0] in OWN
    return any(alias.name.split(".")[0] in OWN for alias in node.names)


def _type_checking_lines(tree: ast.Module) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in ast.walk(node):
                if hasattr(child, "lineno"):
                    lines.add(child.lineno)
    return lines


def _reason(line: str) -> bool:
    """Whether ``line`` has a comment that says something (not only a noqa or type: ignore)."""
    _, hash_, comment = line.partition("#")
    text = re.sub(r"(noqa(:\s*[A-Z0-9, ]+)?|type:\s*ignore(\[[^\]]*\])?)", "", comment)
    return bool(hash_) and bool(text.strip(" #-:;,"))


def unexplained_local_imports(path: Path) -> list[str]:
    source = path.read_text()
    lines = source.splitlines()
    tree = ast.parse(source)
    typing_only = _type_checking_lines(tree)
    out: set[str] = set()  # a nested function's imports are seen from every enclosing one
    for fn in ast.walk(tree):
        if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(fn):
            if not isinstance(node, ast.Import | ast.ImportFrom) or not _own(node):
                continue
            if node.lineno in typing_only:
                continue
            here, above = lines[node.lineno - 1], lines[node.lineno - 2]
            said = _reason(here) or (above.strip().startswith("#") and _reason(above))
            if not said:
                out.add(f"{path.relative_to(ROOT)}:{node.lineno}: {here.strip()}")
    return sorted(out)


def test_imports_inside_functions_say_why() -> None:
    found = [
        hit for root in PRODUCT for p in root.rglob("*.py") for hit in unexplained_local_imports(p)
    ]
    assert not found, "function-level imports without a reason:\n" + "\n".join(found)


def test_the_check_catches_an_unexplained_local_import(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "def f():\n"
        "    from driftloop.settings import get_settings\n"
        "    return get_settings()\n"
        "\n"
        "def g():\n"
        "    # start-up cost\n"
        "    from driftloop.settings import get_settings\n"
        "    import json\n"
        "    return get_settings(), json\n"
    )
    noqa_only = tmp_path / "noqa_only.py"
    noqa_only.write_text(
        "def h():\n    from driftloop.settings import get_settings  # noqa: F401\n"
    )
    global ROOT
    saved, ROOT = ROOT, tmp_path
    try:
        assert unexplained_local_imports(sample) == [
            "sample.py:2: from driftloop.settings import get_settings"
        ]
        assert len(unexplained_local_imports(noqa_only)) == 1
    finally:
        ROOT = saved
