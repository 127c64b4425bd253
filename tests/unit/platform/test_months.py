from __future__ import annotations

import pytest

from driftloop.errors import InvalidInputError
from driftloop.months import month_range, next_month, parse_month


def test_month_range_is_inclusive_and_crosses_years() -> None:
    assert month_range("2013-11", "2014-02") == ["2013-11", "2013-12", "2014-01", "2014-02"]
    assert month_range("2013-03", "2013-03") == ["2013-03"]
    assert next_month("2013-12") == "2014-01"


@pytest.mark.parametrize("bad", ["2013-13", "2013-00", "13-01", "2013/01", "January"])
def test_unknown_months_are_rejected_by_name(bad: str) -> None:
    with pytest.raises(InvalidInputError, match="unknown month"):
        parse_month(bad)


def test_reversed_range_is_rejected() -> None:
    with pytest.raises(InvalidInputError, match="reversed month range"):
        month_range("2013-03", "2013-01")
