"""Months, the unit of data partitions: ``YYYY-MM`` strings."""

from __future__ import annotations

import re

from driftloop.errors import InvalidInputError

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


def parse_month(value: str) -> str:
    """Validate ``YYYY-MM`` and return it normalised."""
    m = _MONTH.match(value.strip())
    if not m or not 1 <= int(m.group(2)) <= 12:
        raise InvalidInputError(f"unknown month {value!r}: expected YYYY-MM, e.g. 2013-01")
    return f"{m.group(1)}-{m.group(2)}"


def month_range(start: str, end: str) -> list[str]:
    """Inclusive list of months from ``start`` to ``end``; errors on a reversed range."""
    a, b = parse_month(start), parse_month(end)
    if a > b:
        raise InvalidInputError(f"reversed month range: --from {a} is after --to {b}")
    y, m = int(a[:4]), int(a[5:])
    out = []
    while f"{y:04d}-{m:02d}" <= b:
        out.append(f"{y:04d}-{m:02d}")
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


def shift_month(month: str, delta: int) -> str:
    """``month`` moved by ``delta`` months (negative: earlier)."""
    y, m = int(month[:4]), int(month[5:]) - 1 + delta
    return f"{y + m // 12:04d}-{m % 12 + 1:02d}"


def next_month(month: str) -> str:
    """The month after ``month``."""
    return shift_month(month, 1)
