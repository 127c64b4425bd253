"""Error-rate gaps between the groups of the data set (carrier, origin): computed for each
version on the holdout, at the threshold it is served with, and judged by the training gate.

Error rate: the share of a slice's holdout rows whose ``is_late`` decision (P(late) >= the
version's threshold, tag ``driftloop.threshold``) is wrong. Small slices are noisy, so every
rate comes with a Wilson score interval (``settings.training.fairness_confidence``) and slices
with fewer than ``fairness_min_slice_rows`` rows are left out.

Per version (:func:`error_rates`), the worst gap of a slice column is reported twice: the point
estimate (highest minus lowest error rate of the judged slices, ``point_gap``) and the part of
it the intervals show (``gap``: ``max(0, max_a lower(a) - min_b upper(b))``; 0 when the
intervals of the surely-worst and surely-best slices overlap).

The gate (:func:`judge_fairness`) compares a challenger with the champion on the same holdout
rows: per column, the widening of the worst point gap (model minus champion) with a paired
bootstrap interval (:func:`gap_change`). It refuses when the one-sided lower bound of the
widening exceeds ``gate_fairness_tolerance``; its stated error rate: a challenger that truly
widens no gap by more than the tolerance is refused with probability at most
``1 - fairness_confidence`` (Bonferroni over the columns). Estimates, intervals, the error rate
and the verdict go into the gate reason, run metrics and ``evaluation/fairness.json``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd

from driftloop.schema import LABEL

FAIRNESS_COLUMNS = ("carrier", "origin")
#: Run artifacts of the evaluation report.
FAIRNESS_JSON = "evaluation/fairness.json"
FAIRNESS_CSV = "evaluation/fairness.csv"
FAIRNESS_MARKDOWN = "evaluation/fairness.md"
#: Bootstrap resamples of the gate's rule, and its seed (the same data give the same verdict).
RESAMPLES = 2000
SEED = 20130101


def wilson_interval(errors: int, rows: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion ``errors / rows`` (``(0, 1)`` without rows). Unlike
    the normal approximation it stays inside [0, 1] and is not degenerate at 0 or all errors."""
    if rows <= 0:
        return 0.0, 1.0
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = errors / rows
    denom = 1 + z * z / rows
    centre = (p + z * z / (2 * rows)) / denom
    half = z * math.sqrt(p * (1 - p) / rows + z * z / (4 * rows * rows)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class SliceError:
    """One slice's error rate with its interval."""

    column: str
    value: str
    rows: int
    errors: int
    rate: float
    lower: float
    upper: float


@dataclass(frozen=True)
class ColumnGap:
    """The worst error-rate gap between two slices of one column (see the module doc)."""

    column: str
    #: lower bound of the gap shown by the intervals (0 when no two intervals are apart)
    gap: float
    #: the slice whose error rate is surely highest / surely lowest
    worst: str | None
    best: str | None
    #: point estimate of that pair's gap (rate(worst) - rate(best))
    point_gap: float
    #: slices judged / left out for having fewer than min_rows rows
    judged: int
    too_small: int


@dataclass
class FairnessReport:
    """Error rates per slice and the worst gap per column of one version on one holdout."""

    threshold: float
    overall_error_rate: float
    rows: int
    confidence: float
    min_rows: int
    slices: list[SliceError] = field(default_factory=list)
    gaps: dict[str, ColumnGap] = field(default_factory=dict)

    @property
    def worst_gap(self) -> float:
        return max((g.gap for g in self.gaps.values()), default=0.0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "overall_error_rate": self.overall_error_rate,
            "rows": self.rows,
            "confidence": self.confidence,
            "min_rows": self.min_rows,
            "worst_gap": self.worst_gap,
            "gaps": {k: asdict(v) for k, v in self.gaps.items()},
            "slices": [asdict(s) for s in self.slices],
        }

    def frame(self) -> pd.DataFrame:
        columns = ["column", "value", "rows", "errors", "rate", "lower", "upper"]
        return pd.DataFrame([asdict(s) for s in self.slices], columns=columns)

    def metrics(self, prefix: str) -> dict[str, float]:
        """Run metrics: ``{prefix}_fairness_gap_{column}`` and the point gap, per column."""
        out = {f"{prefix}_fairness_error_rate": self.overall_error_rate}
        for column, gap in self.gaps.items():
            out[f"{prefix}_fairness_gap_{column}"] = gap.gap
            out[f"{prefix}_fairness_point_gap_{column}"] = gap.point_gap
        return {k: v for k, v in out.items() if math.isfinite(v)}

    def summary(self) -> str:
        """One line per column, for reasons and logs."""
        parts = []
        for column, g in self.gaps.items():
            if g.worst is None:
                parts.append(f"{column}: no two slices of >= {self.min_rows} rows")
                continue
            parts.append(
                f"{column} {g.gap:.4f} ({g.worst} vs {g.best}: {g.point_gap:+.4f} point gap)"
            )
        return "; ".join(parts)


def error_rates(
    frame: pd.DataFrame,
    p: np.ndarray,
    threshold: float,
    min_rows: int = 200,
    confidence: float = 0.95,
    columns: tuple[str, ...] = FAIRNESS_COLUMNS,
) -> FairnessReport:
    """The error rates of ``p`` (P(late) of each row of ``frame``) cut at ``threshold``, per
    slice of each column, and each column's worst gap."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    wrong = _wrong(frame, p, threshold)
    report = FairnessReport(
        threshold=float(threshold),
        overall_error_rate=float(wrong.mean()) if len(wrong) else math.nan,
        rows=len(wrong),
        confidence=confidence,
        min_rows=min_rows,
    )
    for column in columns:
        keys = frame[column].astype(str).fillna("<missing>").to_numpy()
        judged: list[SliceError] = []
        small = 0
        for value in np.unique(keys):
            mask = keys == value
            rows, errors = int(mask.sum()), int(wrong[mask].sum())
            lower, upper = wilson_interval(errors, rows, confidence)
            item = SliceError(column, str(value), rows, errors, errors / rows, lower, upper)
            report.slices.append(item)
            if rows >= min_rows:
                judged.append(item)
            else:
                small += 1
        report.gaps[column] = _column_gap(column, judged, small)
    return report


def _column_gap(column: str, judged: list[SliceError], small: int) -> ColumnGap:
    if len(judged) < 2:
        return ColumnGap(column, 0.0, None, None, 0.0, len(judged), small)
    worst = max(judged, key=lambda s: (s.lower, s.rate))
    best = min(judged, key=lambda s: (s.upper, s.rate))
    gap = max(0.0, worst.lower - best.upper)
    return ColumnGap(
        column, gap, worst.value, best.value, worst.rate - best.rate, len(judged), small
    )


def _wrong(frame: pd.DataFrame, p: np.ndarray, threshold: float) -> np.ndarray:
    y = frame[LABEL].to_numpy(dtype=np.float64)
    return np.asarray((np.asarray(p, dtype=np.float64) >= threshold) != (y == 1))


@dataclass(frozen=True)
class GapChange:
    """How much a challenger widens one column's worst error-rate gap against the champion,
    estimated on the same holdout rows (paired), with a bootstrap interval."""

    column: str
    #: point worst gaps (highest minus lowest error rate of the judged slices)
    model_gap: float
    champion_gap: float
    #: model_gap - champion_gap, and its two-sided interval at ``confidence`` (``lower`` is
    #: also the one-sided lower bound at ``1 - (1 - confidence) / 2``)
    estimate: float
    lower: float
    upper: float
    confidence: float
    #: the model's worst / best slice (the pair behind ``model_gap``)
    worst: str | None
    best: str | None
    judged: int
    resamples: int


def gap_change(
    frame: pd.DataFrame,
    p_model: np.ndarray,
    model_threshold: float,
    p_champion: np.ndarray,
    champion_threshold: float,
    column: str,
    min_rows: int,
    confidence: float,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> GapChange:
    """The change of ``column``'s worst gap, model minus champion. Paired bootstrap, stratified
    by slice: each judged slice's rows are redrawn (multinomially over the four cells of
    (model wrong, champion wrong)), both worst gaps recomputed; the interval is the percentile
    interval of their difference. Pairing cancels the noise both models share."""
    keys = frame[column].astype(str).to_numpy()
    cells = _wrong(frame, p_model, model_threshold).astype(np.int64) * 2 + _wrong(
        frame, p_champion, champion_threshold
    ).astype(np.int64)
    values, counts = np.unique(keys, return_counts=True)
    judged = [str(v) for v, n in zip(values, counts, strict=True) if n >= min_rows]
    if len(judged) < 2:
        return GapChange(column, 0.0, 0.0, 0.0, 0.0, 0.0, confidence, None, None, len(judged), 0)
    rng = np.random.default_rng(seed)
    boot_m = np.empty((resamples, len(judged)))
    boot_c = np.empty((resamples, len(judged)))
    rate_m, rate_c = np.empty(len(judged)), np.empty(len(judged))
    for j, value in enumerate(judged):
        cell = np.bincount(cells[keys == value], minlength=4)
        n = int(cell.sum())
        rate_m[j], rate_c[j] = (cell[2] + cell[3]) / n, (cell[1] + cell[3]) / n
        draws = rng.multinomial(n, cell / n, size=resamples)
        boot_m[:, j] = (draws[:, 2] + draws[:, 3]) / n
        boot_c[:, j] = (draws[:, 1] + draws[:, 3]) / n
    diff = (boot_m.max(axis=1) - boot_m.min(axis=1)) - (boot_c.max(axis=1) - boot_c.min(axis=1))
    alpha = 1 - confidence
    lower, upper = np.quantile(diff, [alpha / 2, 1 - alpha / 2])
    model_gap = float(rate_m.max() - rate_m.min())
    champion_gap = float(rate_c.max() - rate_c.min())
    return GapChange(
        column,
        model_gap,
        champion_gap,
        model_gap - champion_gap,
        float(lower),
        float(upper),
        confidence,
        judged[int(rate_m.argmax())],
        judged[int(rate_m.argmin())],
        len(judged),
        resamples,
    )


@dataclass(frozen=True)
class FairnessVerdict:
    """The gate's fairness rule: ``allowed``, the reason with the numbers, and each column's
    :class:`GapChange` (``widened``: the columns that refused, by estimated widening)."""

    allowed: bool
    reason: str
    widened: dict[str, float] = field(default_factory=dict)
    changes: dict[str, GapChange] = field(default_factory=dict)
    #: the rule's stated error rate (all columns together) and its tolerance
    alpha: float = 0.0
    tolerance: float = 0.0

    def metrics(self) -> dict[str, float]:
        """Run metrics: ``holdout_fairness_gap_change_{column}`` and its interval."""
        out: dict[str, float] = {}
        for column, c in self.changes.items():
            out[f"holdout_fairness_gap_change_{column}"] = c.estimate
            out[f"holdout_fairness_gap_change_{column}_lower"] = c.lower
            out[f"holdout_fairness_gap_change_{column}_upper"] = c.upper
        return out


def judge_fairness(
    frame: pd.DataFrame,
    p_model: np.ndarray,
    model_threshold: float,
    p_champion: np.ndarray,
    champion_threshold: float,
    tolerance: float,
    champion_version: str | None,
    *,
    min_rows: int = 200,
    confidence: float = 0.95,
    columns: tuple[str, ...] = FAIRNESS_COLUMNS,
    resamples: int = RESAMPLES,
) -> FairnessVerdict:
    """Refuse when, on some column, the model's worst error-rate gap is wider than the
    champion's by more than ``tolerance`` beyond reasonable doubt: the one-sided lower bound of
    the widening (:func:`gap_change`) exceeds ``tolerance``. Stated error rate: a challenger
    whose worst gaps truly widen by no more than ``tolerance`` is refused with probability at
    most ``alpha = 1 - confidence`` (bootstrap approximation; ``alpha`` is split evenly over the
    columns, Bonferroni). Each version is cut at its own (served) threshold."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    alpha = 1 - confidence
    per_column = 1 - 2 * alpha / len(columns)  # two-sided level whose lower bound is 1 - a/m
    changes = {
        c: gap_change(
            frame,
            p_model,
            model_threshold,
            p_champion,
            champion_threshold,
            c,
            min_rows,
            per_column,
            resamples,
        )
        for c in columns
    }
    widened = {c: g.estimate for c, g in changes.items() if g.lower > tolerance}
    who = f"champion v{champion_version}" if champion_version else "the champion"

    def said(g: GapChange) -> str:
        if g.worst is None:
            return f"{g.column}: fewer than two slices of >= {min_rows} rows"
        return (
            f"{g.column} gap {g.model_gap:.4f} ({g.worst} vs {g.best}) vs champion's "
            f"{g.champion_gap:.4f}: "
            f"widens {g.estimate:+.4f} [{g.lower:+.4f}, {g.upper:+.4f}]"
        )

    method = (
        f"worst error-rate gap between slices of >= {min_rows} holdout rows, at thresholds "
        f"{model_threshold:.4f} vs {champion_threshold:.4f}; widening with a paired bootstrap "
        f"interval ({resamples} resamples, one-sided {1 - alpha / len(columns):.4g} lower bound "
        f"per column); refuses when a lower bound exceeds tolerance {tolerance:g}, so a challenger "
        f"within the tolerance is refused with probability <= {alpha:.0%}"
    )
    if widened:
        detail = "; ".join(f"{said(changes[c])} > tolerance {tolerance:g}" for c in widened)
        others = [said(g) for c, g in changes.items() if c not in widened]
        rest = f"; {'; '.join(others)}" if others else ""
        return FairnessVerdict(
            False,
            f"fairness: {detail} against {who}{rest} ({method})",
            widened,
            changes,
            alpha,
            tolerance,
        )
    return FairnessVerdict(
        True,
        f"fairness within {tolerance:g} of {who}: "
        + "; ".join(said(g) for g in changes.values())
        + f" ({method})",
        {},
        changes,
        alpha,
        tolerance,
    )


def markdown(
    report: dict[str, Any],
    champion: dict[str, Any] | None = None,
    verdict: dict[str, Any] | None = None,
) -> list[str]:
    """The fairness section of the model card and the evaluation report (from ``to_dict`` and
    the verdict's ``asdict``)."""
    lines = [
        f"Error rate at threshold {report['threshold']:.4f}: {report['overall_error_rate']:.4f} "
        f"over {report['rows']} holdout rows. Each slice's rate has a "
        f"{report['confidence']:.0%} Wilson interval; slices under {report['min_rows']} rows are "
        "left out. Worst gap: highest minus lowest error rate of the judged slices (point), and "
        "the part of it their intervals show (0 when they overlap).",
        "",
        "| column | worst gap (point) | slices (worst vs best) | shown by the intervals "
        "| champion's worst gap (point) | judged / too small |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for column, g in report["gaps"].items():
        pair = f"{g['worst']} vs {g['best']}" if g["worst"] is not None else "n/a"
        theirs = (champion or {}).get("gaps", {}).get(column)
        champ = f"{theirs['point_gap']:.4f}" if theirs else "n/a"
        lines.append(
            f"| {column} | {g['point_gap']:.4f} | {pair} | {g['gap']:.4f} | {champ} "
            f"| {g['judged']} / {g['too_small']} |"
        )
    rule = verdict or {}
    changes = rule.get("changes") or {}
    if changes:
        lines += [
            "",
            f"Gate rule ({'passed' if rule['allowed'] else 'refused'}): widening of each worst "
            "gap against the champion on the same rows (paired bootstrap interval); refused when "
            f"a lower bound exceeds {rule['tolerance']:g} (error rate <= {rule['alpha']:.0%}).",
            "",
            "| column | widening | interval | level | resamples |",
            "|---|---:|---|---:|---:|",
        ]
        lines += [
            f"| {c['column']} | {c['estimate']:+.4f} | [{c['lower']:+.4f}, {c['upper']:+.4f}] "
            f"| {c['confidence']:.4g} | {c['resamples']} |"
            for c in changes.values()
        ]
    ranked = sorted(
        (s for s in report["slices"] if s["rows"] >= report["min_rows"]),
        key=lambda s: -s["lower"],
    )
    lines += [
        "",
        "Highest error rates (judged slices):",
        "",
        "| slice | rows | error rate | interval |",
        "|---|---:|---:|---|",
    ]
    lines += [
        f"| {s['column']}={s['value']} | {s['rows']} | {s['rate']:.4f} "
        f"| [{s['lower']:.4f}, {s['upper']:.4f}] |"
        for s in ranked[:5]
    ]
    return lines
