"""Planted distributions: real ``*.dist-info`` folders in a tmp path that
``importlib.metadata`` reads exactly as it reads installed ones."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

Plant = Callable[..., Path]


@pytest.fixture
def plant(tmp_path: Path) -> Plant:
    """``plant(name, version, License=..., Classifier=[...], Requires_Dist=[...])``: a
    ``name-version.dist-info`` under ``tmp_path/site`` (returned) with those METADATA headers
    (``_`` in a keyword is ``-`` in the header; a list repeats the header)."""
    site = tmp_path / "site"

    def make(name: str, version: str, **headers: str | list[str]) -> Path:
        info = site / f"{name.replace('-', '_')}-{version}.dist-info"
        info.mkdir(parents=True)
        lines = ["Metadata-Version: 2.4", f"Name: {name}", f"Version: {version}"]
        for key, value in headers.items():
            for item in value if isinstance(value, list) else [value]:
                lines.append(f"{key.replace('_', '-')}: {item}")
        (info / "METADATA").write_text("\n".join(lines) + "\n\n")
        return site

    return make
