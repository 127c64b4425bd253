"""Reading a supply-chain policy file (YAML, validated by a pydantic model) with errors that
name the file and the field: the licence policy and the vulnerability ignore file share it."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from driftloop.errors import InvalidInputError

M = TypeVar("M", bound=BaseModel)


def load_policy_file(path: Path, model: type[M], what: str, empty: Any = None) -> M:
    """``model`` validated from the YAML at ``path`` (``empty`` stands for an empty file); any
    problem raises :class:`InvalidInputError` as ``"<what> <path>: <field>: <message>"``."""
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise InvalidInputError(f"{what} {path}: cannot read it ({exc})") from None
    except yaml.YAMLError as exc:
        raise InvalidInputError(f"{what} {path}: not YAML ({exc})") from None
    try:
        return model.model_validate(empty if raw is None and empty is not None else raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise InvalidInputError(
            f"{what} {path}: {where}: {first['msg']} ({exc.error_count()} problem(s))"
        ) from None
