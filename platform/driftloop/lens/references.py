"""Do the references of ``lens.yaml`` exist? Files are read, never imported or run.

* code: ``path`` (a file or folder of the repository) or ``path::symbol``. In a Python file the
  symbol is a module-level function, class or assigned name, or ``Class.member``; in any other
  file it is text the file holds (a key of a YAML file, a template's name).
* tests: pytest node ids, ``tests/<file>.py::test_name`` or ``tests/<file>.py::Class::test_name``
  (a parametrised ``[...]`` suffix is ignored). The test functions are found with :mod:`ast`, as
  pytest's default collection would find them: ``test*`` functions at module level and in
  ``Test*`` classes.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

TESTS_DIR = "tests"


def _inside(root: Path, relative: str) -> Path | None:
    """``root / relative`` when it stays inside ``root`` (None for absolute or escaping paths)."""
    if not relative or Path(relative).is_absolute():
        return None
    path = (root / relative).resolve()
    return path if path.is_relative_to(root.resolve()) else None


def _parse(path: Path) -> ast.Module | None:
    try:
        return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
        return None


def _assigned(node: ast.stmt) -> list[str]:
    if isinstance(node, ast.Assign):
        return [t.id for t in node.targets if isinstance(t, ast.Name)]
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return [node.target.id]
    return []


def _names(body: list[ast.stmt], prefix: str = "") -> set[str]:
    out: set[str] = set()
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            out.add(prefix + node.name)
        elif isinstance(node, ast.ClassDef):
            out.add(prefix + node.name)
            out |= _names(node.body, f"{prefix}{node.name}.")
        else:
            out.update(prefix + name for name in _assigned(node))
    return out


@cache
def python_symbols(path: Path, mtime_ns: int) -> frozenset[str] | None:
    """Dotted names a Python file defines (None when it does not parse); cached per version."""
    del mtime_ns  # part of the cache key only
    tree = _parse(path)
    return None if tree is None else frozenset(_names(tree.body))


@cache
def collected_tests(path: Path, mtime_ns: int) -> frozenset[str] | None:
    """``name`` and ``Class::name`` of the tests pytest collects from ``path`` (None when the file
    does not parse); cached per version of the file."""
    del mtime_ns
    tree = _parse(path)
    if tree is None:
        return None
    out: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith(
            "test"
        ):
            out.add(node.name)
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            for member in node.body:
                if isinstance(
                    member, ast.FunctionDef | ast.AsyncFunctionDef
                ) and member.name.startswith("test"):
                    out.add(f"{node.name}::{member.name}")
    return frozenset(out)


def code_problem(root: Path, reference: str) -> str | None:
    """Why ``reference`` (``path`` or ``path::symbol``) does not resolve; None when it does."""
    relative, sep, symbol = reference.partition("::")
    path = _inside(root, relative)
    if path is None:
        return f"code {reference!r} is not a path inside the repository"
    if not path.exists():
        return f"code {relative!r} does not exist"
    if not sep:
        return None
    if not symbol:
        return f"code {reference!r} names an empty symbol"
    if path.is_dir():
        return f"code {reference!r}: a folder has no symbols"
    if path.suffix == ".py":
        names = python_symbols(path, path.stat().st_mtime_ns)
        if names is None:
            return f"code {relative!r} does not parse as Python"
        if symbol not in names:
            return f"code {relative!r} defines no {symbol!r}"
        return None
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return f"code {relative!r} cannot be read as text"
    return None if symbol in text else f"code {relative!r} does not mention {symbol!r}"


def node_id_problem(root: Path, node_id: str) -> str | None:
    """Why pytest node id ``node_id`` names no test of the repository; None when it does."""
    relative, sep, name = node_id.partition("::")
    name = name.split("[", 1)[0]
    if not sep or not name:
        return f"test {node_id!r} must name a test: tests/<file>.py::<test function>"
    path = _inside(root, relative)
    if path is None or not relative.startswith(f"{TESTS_DIR}/") or path.suffix != ".py":
        return f"test {node_id!r} is not a Python file under {TESTS_DIR}/"
    if not path.is_file():
        return f"test file {relative!r} does not exist"
    found = collected_tests(path, path.stat().st_mtime_ns)
    if found is None:
        return f"test file {relative!r} does not parse as Python"
    if name not in found:
        return f"test {name!r} is not in {relative}"
    return None
