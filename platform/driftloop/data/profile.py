"""Data profiles: one JSON profile per ingested partition, and the shift between two profiles.

A profile (:func:`profile_frame`) holds, per column: the dtype, the missing share and, for
numbers, min/max/mean/std and 21 quantiles (0, 5 %, ... 100 %); for text, and for numbers with
few distinct values, the top categories with their shares. Ingest writes it next to the month's
partition (``profiles/flights-2013-01.json``, the layout is in :mod:`driftloop.data.partitions`),
git-tracked in the data repository like DVC's own metrics files, so every data revision carries
the profiles of its partitions and ``git diff REV -- profiles/`` shows what changed. The bytes are
deterministic: re-ingesting unchanged data changes nothing.

The shift of a column between a reference profile and a current one (:func:`compare`) is
- ``psi``: the population stability index on the reference's deciles (numbers; the current
  share per bin is read off its quantiles, each distribution taken as piecewise uniform between
  its quantiles) or on the categories both top lists hold plus one bucket for the rest
  (categories; exact shares);
- ``missing_delta``: the absolute change of the missing share;
and of the partition, ``row_change``: the relative change of its row count. Each is judged
against a limit of ``settings.data`` (:class:`ShiftLimits`).

Two comparisons, two sets of limits (see :func:`driftloop.data.profile.check_window`):
``revised``: a month against the same month at an earlier data revision. Unchanged data gives
exactly 0; a past month whose data moved is what poisoning or a silent upstream change looks
like. ``new``: a month the reference revision lacks, against the preceding month. Seasons move
these (weather most), so its limits sit above the largest month-to-month shift of 2013.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from driftloop.data import partitions as parts
from driftloop.data.repo import DataRepo
from driftloop.errors import NotFoundError
from driftloop.months import parse_month, shift_month
from driftloop.settings import DataSettings, Settings

logger = logging.getLogger(__name__)

PROFILE_VERSION = 1
#: Quantile levels kept per numeric column.
QUANTILES = tuple(round(i / 20, 2) for i in range(21))
#: Categories kept per text column (and per number column with at most this many values).
TOP_K = 50
#: Text columns whose distinct share is above this are identifiers: no distribution is kept.
IDENTIFIER_SHARE = 0.5
#: Shares are floored here before the PSI's logarithm (an empty bin on one side).
PSI_FLOOR = 1e-4
_DIGITS = 6

Comparison = Literal["revised", "new"]


# ---- profiles ---------------------------------------------------------------------------------
def _round(value: float) -> float | None:
    return round(float(value), _DIGITS) if math.isfinite(float(value)) else None


def _top(values: pd.Series) -> tuple[list[list[Any]], float]:
    """Top categories (``[value, share]``, by share then value) and the share of the rest."""
    shares = values.value_counts(normalize=True, sort=False)
    ordered = sorted(shares.items(), key=lambda kv: (-kv[1], str(kv[0])))
    top = [[_plain(v), _round(s)] for v, s in ordered[:TOP_K]]
    rest = max(0.0, 1.0 - float(sum(s for _, s in ordered[:TOP_K])))
    return top, _round(rest) or 0.0


def _plain(value: Any) -> Any:
    """A JSON value for a category (numpy scalars to Python ones)."""
    if isinstance(value, np.generic):
        return value.item()
    return value


def _column_profile(values: pd.Series) -> dict[str, Any]:
    rows = len(values)
    present = values.dropna()
    out: dict[str, Any] = {
        "dtype": str(values.dtype),
        "missing_share": _round(1 - len(present) / rows) if rows else None,
        "distinct": int(present.nunique()),
    }
    if isinstance(values.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_any_dtype(values):
        out["kind"] = "datetime"
        out["min"] = present.min().isoformat() if len(present) else None
        out["max"] = present.max().isoformat() if len(present) else None
        return out
    if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
        numbers = present.astype("float64")
        out["kind"] = "numeric"
        if len(numbers):
            out["min"], out["max"] = _round(numbers.min()), _round(numbers.max())
            out["mean"], out["std"] = _round(numbers.mean()), _round(numbers.std(ddof=0))
            levels = np.quantile(numbers.to_numpy(), QUANTILES)
            out["quantiles"] = [_round(v) for v in levels]
        if 0 < out["distinct"] <= TOP_K:
            out["top"], out["other_share"] = _top(numbers)
        return out
    text = present.astype(str)
    if len(text) and out["distinct"] / len(text) > IDENTIFIER_SHARE and out["distinct"] > TOP_K:
        out["kind"] = "identifier"
        return out
    out["kind"] = "categorical"
    if len(text):
        out["top"], out["other_share"] = _top(text)
    return out


def profile_frame(frame: pd.DataFrame, kind: str, month: str | None) -> dict[str, Any]:
    """The profile of one partition frame (JSON-able; deterministic for equal frames)."""
    return {
        "profile_version": PROFILE_VERSION,
        "partition": parts.partition_key(kind, month),
        "kind": kind,
        "month": month,
        "rows": len(frame),
        "columns": {str(name): _column_profile(frame[name]) for name in frame.columns},
    }


def profile_bytes(profile: dict[str, Any]) -> bytes:
    """The stored form: sorted keys, two-space indent, trailing newline (stable bytes)."""
    return (json.dumps(profile, indent=2, sort_keys=True, allow_nan=False) + "\n").encode()


# ---- shift of one column ------------------------------------------------------------------------
def _cdf(quantiles: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """(values, cumulative share) of a quantile sketch: a repeated value is a point mass (its
    highest level), the distribution piecewise uniform between distinct values."""
    levels = np.asarray(QUANTILES, dtype=np.float64)
    values = np.asarray(quantiles, dtype=np.float64)
    distinct = np.unique(values)
    last = np.searchsorted(values, distinct, side="right") - 1
    return distinct, levels[last]


def _shares_at(quantiles: list[float], edges: np.ndarray) -> np.ndarray:
    """Shares of the bins ``(-inf, e0], (e0, e1], ..., (e_last, inf)`` under a sketch."""
    xs, cum = _cdf(quantiles)
    at = np.interp(edges, xs, cum, left=0.0, right=1.0)
    return np.diff(np.r_[0.0, at, 1.0])


def psi(reference: np.ndarray, current: np.ndarray) -> float:
    """Population stability index of two share vectors over the same bins."""
    ref = np.clip(np.asarray(reference, dtype=np.float64), PSI_FLOOR, None)
    cur = np.clip(np.asarray(current, dtype=np.float64), PSI_FLOOR, None)
    ref, cur = ref / ref.sum(), cur / cur.sum()
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def numeric_psi(reference: list[float], current: list[float]) -> float:
    """PSI on the reference's deciles (the nine inner cut points: the extremes of a sample are
    noise), both sides read off their quantile sketches."""
    deciles = np.unique(np.asarray(reference, dtype=np.float64)[2:-2:2])
    return psi(_shares_at(reference, deciles), _shares_at(current, deciles))


def categorical_psi(reference: list[list[Any]], current: list[list[Any]]) -> float:
    """PSI over the categories both top lists hold, plus one bucket for everything else."""
    ref = {str(v): float(s) for v, s in reference}
    cur = {str(v): float(s) for v, s in current}
    both = sorted(set(ref) & set(cur))
    r = [ref[k] for k in both]
    c = [cur[k] for k in both]
    return psi(np.r_[r, max(0.0, 1 - sum(r))], np.r_[c, max(0.0, 1 - sum(c))])


@dataclass
class ColumnShift:
    """How one column moved, and which limit it broke (``reasons``; empty when none)."""

    column: str
    psi: float | None
    missing_before: float | None
    missing_after: float | None
    missing_delta: float | None
    reasons: list[str] = field(default_factory=list)

    @property
    def flagged(self) -> bool:
        return bool(self.reasons)


@dataclass(frozen=True)
class ShiftLimits:
    """The limits one comparison is judged against (from ``settings.data``)."""

    psi: float
    missing: float
    rows: float

    @classmethod
    def of(cls, data: DataSettings, comparison: Comparison) -> ShiftLimits:
        if comparison == "revised":
            return cls(
                data.profile_psi_limit, data.profile_missing_limit, data.profile_row_change_limit
            )
        return cls(
            data.profile_new_month_psi_limit,
            data.profile_new_month_missing_limit,
            data.profile_new_month_row_change_limit,
        )


def _column_shift(
    name: str, ref: dict[str, Any], cur: dict[str, Any], limits: ShiftLimits
) -> ColumnShift:
    before, after = ref.get("missing_share"), cur.get("missing_share")
    delta = None if before is None or after is None else round(abs(after - before), _DIGITS)
    value: float | None = None
    if ref.get("kind") != cur.get("kind"):
        shift = ColumnShift(name, None, before, after, delta)
        shift.reasons.append(f"kind changed from {ref.get('kind')} to {cur.get('kind')}")
        return shift
    if "top" in ref and "top" in cur:
        value = categorical_psi(ref["top"], cur["top"])
    elif ref.get("kind") == "numeric" and ref.get("quantiles") and cur.get("quantiles"):
        value = numeric_psi(ref["quantiles"], cur["quantiles"])
    shift = ColumnShift(
        name, None if value is None else round(value, _DIGITS), before, after, delta
    )
    if shift.psi is not None and shift.psi > limits.psi:
        shift.reasons.append(f"PSI {shift.psi:.3f} > {limits.psi:g}")
    if delta is not None and delta > limits.missing:
        shift.reasons.append(
            f"missing share {before:.3f} -> {after:.3f} (change {delta:.3f} > {limits.missing:g})"
        )
    return shift


@dataclass
class PartitionShift:
    """One partition against its reference profile."""

    partition: str
    comparison: Comparison
    #: ``flights/2013-01@<rev>`` the partition was compared with
    reference: str
    rows_before: int
    rows_after: int
    row_change: float
    limits: ShiftLimits
    columns: list[ColumnShift] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    @property
    def flagged_columns(self) -> list[ColumnShift]:
        return [c for c in self.columns if c.flagged]

    @property
    def flagged(self) -> bool:
        return bool(self.reasons) or bool(self.flagged_columns)

    def findings(self) -> list[str]:
        """One line per broken limit, naming the partition and the column."""
        out = [
            f"{self.partition} ({self.comparison} vs {self.reference}): {r}" for r in self.reasons
        ]
        for c in self.flagged_columns:
            out += [
                f"{self.partition}.{c.column} ({self.comparison} vs {self.reference}): {r}"
                for r in c.reasons
            ]
        return out


def compare(
    reference: dict[str, Any],
    current: dict[str, Any],
    comparison: Comparison,
    limits: ShiftLimits,
    reference_name: str,
) -> PartitionShift:
    """The shift of ``current`` from ``reference`` (two profiles of the same kind)."""
    rows_before, rows_after = int(reference["rows"]), int(current["rows"])
    change = abs(rows_after - rows_before) / max(rows_before, 1)
    out = PartitionShift(
        partition=str(current["partition"]),
        comparison=comparison,
        reference=reference_name,
        rows_before=rows_before,
        rows_after=rows_after,
        row_change=round(change, _DIGITS),
        limits=limits,
    )
    if change > limits.rows:
        out.reasons.append(
            f"rows {rows_before} -> {rows_after} (change {change:.3f} > {limits.rows:g})"
        )
    ref_cols, cur_cols = reference["columns"], current["columns"]
    for name in sorted(set(ref_cols) - set(cur_cols)):
        out.reasons.append(f"column {name} disappeared")
    for name in sorted(set(cur_cols) - set(ref_cols)):
        out.reasons.append(f"column {name} is new")
    for name in sorted(set(ref_cols) & set(cur_cols)):
        out.columns.append(_column_shift(name, ref_cols[name], cur_cols[name], limits))
    return out


# ---- shift of a set of partitions between two revisions -----------------------------------------
def _seasonal(partition: str, column: str, data: DataSettings) -> bool:
    kind = partition.split("/")[0]
    return kind in data.profile_seasonal or f"{kind}.{column}" in data.profile_seasonal


@dataclass
class ShiftReport:
    """Partitions of a revision against their references: what was compared with what, every
    number, the limits, what broke them and whether that stops training (``blocking``)."""

    rev: str | None
    reference_rev: str | None
    #: why that reference revision (the champion's data, the parent revision, ...)
    reference_source: str
    block: str
    partitions: list[PartitionShift] = field(default_factory=list)
    #: partitions with nothing to compare with (first month, a revision without profiles)
    unreferenced: list[str] = field(default_factory=list)
    #: partitions of ``rev`` without a profile (ingested before profiles existed)
    unprofiled: list[str] = field(default_factory=list)
    #: set when nothing could be checked, saying why
    skipped: str | None = None

    @property
    def flagged(self) -> bool:
        return any(p.flagged for p in self.partitions)

    def findings(self) -> list[str]:
        return [line for p in self.partitions for line in p.findings()]

    def blocking_findings(self) -> list[str]:
        """Findings in the comparisons ``block`` covers (``settings.data.profile_block``)."""
        covered = {"off": (), "revised": ("revised",), "all": ("revised", "new")}[self.block]
        return [line for p in self.partitions if p.comparison in covered for line in p.findings()]

    @property
    def blocking(self) -> bool:
        return bool(self.blocking_findings())

    @property
    def status(self) -> str:
        if self.skipped is not None:
            return "skipped"
        return "flagged" if self.flagged else "ok"

    def max_psi(self) -> float:
        values = [c.psi for p in self.partitions for c in p.columns if c.psi is not None]
        return max(values, default=0.0)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["status"] = self.status
        out["findings"] = self.findings()
        out["blocking_findings"] = self.blocking_findings()
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ShiftReport:
        """The report back from :meth:`to_dict` (a flow's task result is JSON)."""
        partitions = [
            PartitionShift(
                **{
                    **{k: v for k, v in p.items() if k not in ("columns", "limits")},
                    "limits": ShiftLimits(**p["limits"]),
                    "columns": [ColumnShift(**c) for c in p["columns"]],
                }
            )
            for p in data.get("partitions", [])
        ]
        return cls(
            rev=data.get("rev"),
            reference_rev=data.get("reference_rev"),
            reference_source=data.get("reference_source", "none"),
            block=data.get("block", "off"),
            partitions=partitions,
            unreferenced=list(data.get("unreferenced", [])),
            unprofiled=list(data.get("unprofiled", [])),
            skipped=data.get("skipped"),
        )

    def markdown(self) -> str:
        """A report for people: the verdict, then every partition's comparison and its worst
        columns (the flow artifact and the model card use it)."""
        if self.skipped is not None:
            return f"Data profile check skipped: {self.skipped}"
        verdict = (
            "**FLAGGED**" + (" (blocks training)" if self.blocking else " (flag only)")
            if self.flagged
            else "no shift beyond the limits"
        )
        ref = self.reference_rev[:12] if self.reference_rev else "none"
        lines = [
            f"Data profile check of revision `{(self.rev or '?')[:12]}` against `{ref}` "
            f"({self.reference_source}): {verdict}; profile_block={self.block}",
            "",
        ]
        lines += [f"- {f}" for f in self.findings()]
        if self.findings():
            lines.append("")
        lines += [
            "| partition | compared with | rows | worst column | PSI | missing change | limits "
            "(PSI / missing / rows) | flagged |",
            "|---|---|---:|---|---:|---:|---|---|",
        ]
        for p in self.partitions:
            judged = [c for c in p.columns if c.psi is not None]
            worst = max(judged, key=lambda c: c.psi or 0.0, default=None)
            miss = max((c.missing_delta or 0.0 for c in p.columns), default=0.0)
            lines.append(
                f"| {p.partition} | {p.reference} ({p.comparison}) | {p.rows_before} -> "
                f"{p.rows_after} | {worst.column if worst else '-'} | "
                f"{worst.psi if worst else 0.0:.3f} | {miss:.3f} | {p.limits.psi:g} / "
                f"{p.limits.missing:g} / {p.limits.rows:g} | {'yes' if p.flagged else 'no'} |"
            )
        for name, items in (("no reference", self.unreferenced), ("no profile", self.unprofiled)):
            if items:
                lines += ["", f"{name}: {', '.join(items)}"]
        return "\n".join(lines)


def load_profile(repo: DataRepo, kind: str, month: str | None, rev: str) -> dict[str, Any] | None:
    """The profile of one partition at revision ``rev`` (None when that revision has none)."""
    text = repo.show(parts.profile_path(kind, month), rev)
    if text is None:
        return None
    profile: dict[str, Any] = json.loads(text)
    return profile


def compare_revisions(
    partitions: list[tuple[str, str | None]],
    settings: Settings,
    rev: str,
    reference_rev: str | None,
    reference_source: str,
) -> ShiftReport:
    """Each partition ``(kind, month)`` at ``rev`` against the same partition at
    ``reference_rev`` (``revised``), or, when that revision lacks it, against the month before at
    ``rev`` (``new``; planes have no month before)."""
    data = settings.data
    repo = DataRepo(settings)
    report = ShiftReport(rev, reference_rev, reference_source, data.profile_block)
    for kind, month in partitions:
        key = parts.partition_key(kind, month)
        current = load_profile(repo, kind, month, rev)
        if current is None:
            report.unprofiled.append(key)
            continue
        reference = load_profile(repo, kind, month, reference_rev) if reference_rev else None
        comparison: Comparison = "revised"
        name = f"{key}@{(reference_rev or '')[:10]}"
        if reference is None and month is not None:
            before = shift_month(month, -1)
            reference, comparison = load_profile(repo, kind, before, rev), "new"
            name = f"{parts.partition_key(kind, before)}@{rev[:10]}"
        if reference is None:
            report.unreferenced.append(key)
            continue
        shift = compare(reference, current, comparison, ShiftLimits.of(data, comparison), name)
        if comparison == "new":
            for column in shift.columns:
                if _seasonal(key, column.column, data):
                    column.reasons = [r for r in column.reasons if not r.startswith("PSI")]
        report.partitions.append(shift)
    return report


def window_partitions(months: list[str]) -> list[tuple[str, str | None]]:
    """The partitions a training run reads: flights and weather of each month, and planes."""
    out: list[tuple[str, str | None]] = [
        (kind, parse_month(m)) for m in months for kind in ("flights", "weather")
    ]
    return [*out, ("planes", None)]


def check_window(
    months: list[str],
    settings: Settings,
    rev: str | None = None,
    reference_rev: str | None = None,
    reference_source: str = "given",
) -> ShiftReport:
    """The profiles of ``months`` (and planes) at data revision ``rev`` (None: the current one)
    against ``reference_rev``: the revision the champion was trained on, when it is ``rev`` or
    an ancestor of it; otherwise the revision before ``rev`` (the data as it was before the
    last ingest). A skipped report (``skipped`` says why) when there is no data repository."""
    data = settings.data
    repo = DataRepo(settings)
    if not repo.exists:
        return ShiftReport(
            rev, None, "none", data.profile_block, skipped=f"no data repository at {repo.root}"
        )
    try:
        commit = repo.resolve(rev or "HEAD")
    except NotFoundError as exc:
        return ShiftReport(rev, None, "none", data.profile_block, skipped=str(exc))
    reference: str | None = None
    if reference_rev:
        try:
            candidate = repo.resolve(reference_rev)
        except NotFoundError:
            logger.warning("reference data revision %s is not in %s", reference_rev, repo.root)
        else:
            if repo.is_ancestor(candidate, commit):
                reference = candidate
            else:
                logger.warning(
                    "reference data revision %s is not an ancestor of %s: comparing with the "
                    "revision before",
                    reference_rev[:10],
                    commit[:10],
                )
    if reference is None:
        try:
            reference, reference_source = repo.resolve(f"{commit}~1"), "the revision before"
        except NotFoundError:
            reference_source = "none (the first revision)"
    report = compare_revisions(
        window_partitions(months), settings, commit, reference, reference_source
    )
    for line in report.findings():
        logger.warning("data profile shift: %s", line)
    return report


def profile_markdown(profile: dict[str, Any]) -> str:
    """One partition's profile as a table for people (the ingest flow's artifact)."""
    lines = [
        f"### {profile['partition']}: {profile['rows']} rows",
        "",
        "| column | kind | missing | min | mean | max | top values |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for name, col in profile["columns"].items():
        top = ", ".join(f"{v} {share:.0%}" for v, share in (col.get("top") or [])[:3])

        def cell(key: str, col: dict[str, Any] = col) -> str:
            value = col.get(key)
            if value is None:
                return ""
            return f"{value:.4g}" if isinstance(value, float) else str(value)

        missing = col.get("missing_share")
        lines.append(
            f"| {name} | {col.get('kind')} | {'' if missing is None else f'{missing:.2%}'} "
            f"| {cell('min')} | {cell('mean')} | {cell('max')} | {top} |"
        )
    return "\n".join(lines)


def profiles_markdown(
    partitions: list[tuple[str, str | None]], settings: Settings, rev: str
) -> str:
    """The profiles of ``partitions`` at data revision ``rev``, one table each."""
    repo = DataRepo(settings)
    out = [f"Data profiles at revision `{rev[:12]}` (stored as `profiles/*.json` in {repo.root})"]
    for kind, month in partitions:
        profile = load_profile(repo, kind, month, rev)
        key = parts.partition_key(kind, month)
        out += ["", profile_markdown(profile) if profile else f"### {key}: no profile"]
    return "\n".join(out)
