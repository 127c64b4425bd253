"""SPDX expressions: precedence, and the allow-list decision for OR, AND and WITH."""

from __future__ import annotations

import pytest

from driftloop.supply import spdx

ALLOW = ["MIT", "Apache-2.0", "BSD-3-Clause", "GPL-2.0-only WITH Classpath-exception-2.0"]


def test_with_binds_tighter_than_and_and_and_tighter_than_or() -> None:
    expr = spdx.parse("MIT OR Apache-2.0 AND GPL-2.0-only WITH LLVM-exception")
    assert expr == spdx.Or(
        (
            spdx.Licence("MIT"),
            spdx.And((spdx.Licence("Apache-2.0"), spdx.Licence("GPL-2.0-only", "LLVM-exception"))),
        )
    )
    assert str(expr) == "MIT OR Apache-2.0 AND GPL-2.0-only WITH LLVM-exception"


def test_parentheses_group_and_print_back() -> None:
    expr = spdx.parse("MPL-2.0 AND (Apache-2.0 OR MIT)")
    assert isinstance(expr, spdx.And)
    assert str(expr) == "MPL-2.0 AND (Apache-2.0 OR MIT)"
    assert [str(x) for x in spdx.licences(expr)] == ["MPL-2.0", "Apache-2.0", "MIT"]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "empty"),
        ("GPLv2 | EPLv1", "'|'"),
        ("MIT License", "unexpected 'License'"),
        ("MIT or Apache-2.0", "unexpected 'or'"),  # operators are upper case
        ("(MIT", "unexpected end"),
        ("MIT AND", "unexpected end"),
        ("MIT WITH AND", "after WITH"),
    ],
)
def test_free_text_is_not_an_expression(text: str, problem: str) -> None:
    with pytest.raises(spdx.ExpressionError, match=problem.replace("(", r"\(").replace("|", r"\|")):
        spdx.parse(text)


@pytest.mark.parametrize(
    ("text", "allowed", "refused"),
    [
        ("MIT", True, ()),
        ("mit", True, ()),  # ids compare case-insensitively
        ("GPL-3.0-only", False, ("GPL-3.0-only",)),
        ("GPL-3.0-only OR MIT", True, ()),  # the licensee chooses MIT
        ("GPL-3.0-only AND MIT", False, ("GPL-3.0-only",)),  # both apply
        ("Apache-2.0 WITH LLVM-exception", True, ()),  # an exception only adds permissions
        ("GPL-2.0-only WITH Classpath-exception-2.0", True, ()),  # listed as a whole
        ("GPL-2.0-only WITH GCC-exception-2.0", False, ("GPL-2.0-only WITH GCC-exception-2.0",)),
        ("AGPL-3.0-only OR GPL-3.0-only", False, ("AGPL-3.0-only", "GPL-3.0-only")),
        ("MIT AND (BSD-3-Clause OR GPL-3.0-only)", True, ()),
    ],
)
def test_evaluate_against_the_allow_list(
    text: str, allowed: bool, refused: tuple[str, ...]
) -> None:
    verdict = spdx.evaluate(spdx.parse(text), ALLOW)
    assert verdict == spdx.Verdict(allowed, refused)


def test_join_all_is_an_and_of_distinct_ids() -> None:
    assert str(spdx.join_all(["MIT", "PSF-2.0", "MIT"])) == "MIT AND PSF-2.0"
    assert spdx.join_all(["MIT"]) == spdx.Licence("MIT")
