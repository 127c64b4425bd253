"""Apply a :class:`~driftloop.data.contract.Contract` to a raw frame: split valid rows from
invalid ones, with one reason string per invalid row (several joined by ``"; "``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from driftloop.data.contract import Column, Contract, is_integral
from driftloop.errors import DataQualityError

logger = logging.getLogger(__name__)

#: Extra columns of a quarantine frame (after the raw columns, which are kept as strings).
SOURCE_ROW = "source_row"
REASON = "reason"


@dataclass
class ValidationResult:
    """``valid``: the declared columns, type-coerced, for rows that pass (index = source row).
    ``quarantine``: the invalid rows' raw values as strings plus ``source_row`` and ``reason``."""

    table: str
    valid: pd.DataFrame
    quarantine: pd.DataFrame

    @property
    def rows_valid(self) -> int:
        return len(self.valid)

    @property
    def rows_invalid(self) -> int:
        return len(self.quarantine)

    @property
    def invalid_share(self) -> float:
        total = self.rows_valid + self.rows_invalid
        return self.rows_invalid / total if total else 0.0


class _Reasons:
    """Per-row reason strings, built only for failing rows."""

    def __init__(self, index: pd.Index) -> None:
        self.text = pd.Series(None, index=index, dtype=object)

    def add(self, mask: pd.Series, message: str, values: pd.Series | None = None) -> None:
        """Add ``message`` to rows where ``mask``; with ``values``, the message is
        ``{values.name}={values[row]}{message}`` (``name=`` only when the series has a name)."""
        mask = mask.fillna(False).astype(bool)
        if not mask.any():
            return
        if values is not None:
            prefix = f"{values.name}=" if values.name is not None else ""
            new = prefix + values[mask].astype(str).str.slice(0, 60) + message
        else:
            new = pd.Series(message, index=mask.index)[mask]
        cur = self.text[mask]
        self.text[mask] = np.where(cur.isna(), new, cur.astype(str) + "; " + new.astype(str))

    @property
    def failed(self) -> pd.Series:
        return self.text.notna()


def _named(col: Column, values: pd.Series) -> pd.Series:
    """Values shown as ``name=value`` in a reason (formatted for failing rows only)."""
    return values.rename(col.name)


def _coerce(col: Column, raw: pd.Series, reasons: _Reasons) -> pd.Series:
    """The column in its declared type; values of the wrong type become missing (with reason)."""
    present = raw.notna()
    if col.type in ("int", "float", "hhmm"):
        values = pd.to_numeric(raw, errors="coerce").astype("float64")
        bad = present & values.isna()
        if col.type in ("int", "hhmm"):
            bad |= present & ~is_integral(values)
        kind = {"int": "an integer", "hhmm": "a clock time HHMM", "float": "a number"}[col.type]
        reasons.add(bad, f" is not {kind}", _named(col, raw))
        values = values.mask(bad)
        if col.type == "hhmm":
            bad_clock = values.notna() & (values % 100 >= 60)
            reasons.add(bad_clock, " is not a clock time HHMM", _named(col, raw))
            values = values.mask(bad_clock)
        return values
    if col.type == "timestamp":
        stamps = pd.to_datetime(raw, utc=True, errors="coerce", format="ISO8601")
        bad = present & stamps.isna()
        reasons.add(bad, " is not an ISO timestamp", _named(col, raw))
        return stamps
    return raw.astype("string")


def _check(
    col: Column, values: pd.Series, raw: pd.Series, refs: dict[str, frozenset[str]], r: _Reasons
) -> None:
    """Column checks on coerced ``values``; cells of the wrong type (already reported) are
    missing there and skipped here."""
    if not col.nullable:
        r.add(raw.isna(), f"{col.name} is missing")
    present = values.notna()
    if col.min is not None:
        r.add(present & (values < col.min), f" < min {col.min:g}", _named(col, values))
    if col.max is not None:
        r.add(present & (values > col.max), f" > max {col.max:g}", _named(col, values))
    allowed = col.allowed
    if col.allowed_from is not None:
        if col.allowed_from not in refs:
            raise DataQualityError(f"reference {col.allowed_from} for {col.name} is not loaded")
        allowed = refs[col.allowed_from]
    if allowed is not None:
        name = col.allowed_from or "{" + ", ".join(sorted(allowed)) + "}"
        bad = present & ~values.isin(allowed)
        r.add(bad, f" is not in {name}", _named(col, values))
    if col.pattern is not None:
        # Match each distinct value once: codes repeat a lot (336k flights, ~4k tail numbers).
        distinct = pd.Series(values[present].unique(), dtype=object)
        good = distinct[distinct.astype(str).str.fullmatch(col.pattern)]
        bad = present & ~values.isin(good)
        r.add(bad, f" does not match {col.pattern}", _named(col, values))


def validate(
    contract: Contract, raw: pd.DataFrame, references: dict[str, frozenset[str]] | None = None
) -> ValidationResult:
    """Check every row of ``raw`` against ``contract``. A declared column absent from ``raw``
    fails the whole table (DataQualityError); undeclared columns are ignored."""
    missing_cols = [c.name for c in contract.columns if c.name not in raw.columns]
    if missing_cols:
        raise DataQualityError(
            f"{contract.table}: columns {', '.join(missing_cols)} are missing from the input"
        )
    refs = references or {}
    reasons = _Reasons(raw.index)
    coerced = pd.DataFrame(
        {c.name: _coerce(c, raw[c.name], reasons) for c in contract.columns}, index=raw.index
    )
    for col in contract.columns:
        _check(col, coerced[col.name], raw[col.name], refs, reasons)
    for rule in contract.rules:
        reasons.add(rule.violated(coerced), rule.message)
    if contract.key is not None:
        ok = ~reasons.failed
        keys = contract.key(coerced[ok])
        dup = keys.duplicated(keep="first")
        if dup.any():
            reasons.add(
                dup.reindex(raw.index, fill_value=False),
                " (an earlier row has this key)",
                (f"duplicate {contract.key_name} " + keys[dup]).rename(None).reindex(raw.index),
            )
    failed = reasons.failed
    valid = coerced[~failed]
    quarantine = raw[failed].astype("string")
    quarantine.insert(len(quarantine.columns), SOURCE_ROW, raw.index[failed].astype("int64"))
    quarantine[REASON] = reasons.text[failed].astype("string")
    if failed.any():
        logger.info("%s: %d of %d rows invalid", contract.table, int(failed.sum()), len(raw))
    return ValidationResult(contract.table, valid, quarantine)
