"""Model references understood by `driftloop lineage` and `driftloop reproduce`."""

from __future__ import annotations

import pytest

from driftloop.errors import InvalidInputError
from driftloop.settings import Settings
from driftloop.training.lineage import parse_ref


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("flight-delay@champion", ("flight-delay", "champion", None)),
        ("other:7", ("other", None, "7")),
        ("models:/other/7", ("other", None, "7")),
        ("models:/other@challenger", ("other", "challenger", None)),
        ("@challenger", ("flight-delay", "challenger", None)),
        ("12", ("flight-delay", None, "12")),
        ("champion", ("flight-delay", "champion", None)),
    ],
)
def test_references_parse(ref: str, expected: tuple[str, str | None, str | None]) -> None:
    assert parse_ref(ref, Settings()) == expected


@pytest.mark.parametrize("ref", ["", "flight-delay:latest", "what"])
def test_bad_references_are_readable_errors(ref: str) -> None:
    with pytest.raises(InvalidInputError):
        parse_ref(ref, Settings())
