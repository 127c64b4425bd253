"""The canary's decision: promote, roll back or extend, from always-valid evidence.

Each judged metric is oriented so that a positive difference means *the challenger is worse*,
and has a non-inferiority margin (``settings.rollout``): how much worse is still acceptable.

===============  =========================================  ====================================
metric           difference (challenger - champion)          margin
===============  =========================================  ====================================
``error_rate``   per-request error rate                      ``max_error_rate_increase``
``latency``      mean log model-call ms per row (log of the  ``log(max_latency_ratio)``
                 ratio of geometric means)
``log_loss``     per labelled row; paired per row in shadow  ``log_loss_margin``
                 mode
``calibration``  |mean(p - y)| (calibration gap) per variant; ``calibration_margin``
                 paired through the probability shift in
                 shadow mode
===============  =========================================  ====================================

Every metric gets a confidence sequence (:mod:`driftloop.sequential`, normal-mixture mSPRT,
mixture scale = its margin) at level ``alpha / k`` for ``k`` judged metrics (Bonferroni), so with
probability at least ``1 - alpha`` *all* of them cover their true values *at every look*. Then:

- **inferior** when the interval lies above the margin (worse by more than the margin);
- **non-inferior** when it lies below the margin (the intersection-union test: promoting needs
  every metric non-inferior, Berger 1982, so the levels need no further split for promotion);
- **undecided** otherwise, or with fewer than ``min_requests`` requests (``min_labeled_rows``
  labelled rows for quality metrics) per variant.

Decision, in order: **halt** on a sample-ratio mismatch (a broken split invalidates every
comparison; the challenger is rolled back and nothing is promoted); **rollback** on a hard guard
against the KPIs of ``settings.kpi`` (after ``guard_min_requests`` challenger requests: its
error rate above ``kpi.max_error_rate``, or more than 1% of its requests slower than
``kpi.p99_latency_ms``, i.e. its p99 over the latency budget, each beyond doubt) or on any
inferior metric; **promote** when every metric is non-inferior; else **extend**, which at
the end of the budget becomes ``on_budget`` (roll back by default). The error rate stated with
each decision: a wrong promotion or a wrong "inferior" has probability at most ``alpha``, however
often the canary is looked at (the intervals are asymptotic: the plug-in variance; see
``benchmarks/decisions.py`` for the measured rates). The design follows Schultzberg, Ankargren &
Franberg, "Risk-aware product decisions in A/B tests with multiple metrics" (2024): guardrails as
non-inferiority tests, decisions only when every test concluded.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from driftloop.monitoring.canary import CanaryEvidence, gather_evidence, read_rollout_frame
from driftloop.registry.client import RegistrySnapshot, registry_snapshot
from driftloop.sequential import (
    Bounds,
    MeanStats,
    SrmResult,
    bounds_for,
    difference_bounds,
    mean_bounds,
    sample_ratio_mismatch,
)
from driftloop.settings import KpiSettings, RolloutSettings, Settings, get_settings

#: Version of the decision rule, stored in every record: a replay with another rule says so.
#: canary-3: the KPIs' hard guards (max error rate, p99 latency budget) from settings.kpi
RULE = "canary-3"
#: the share of requests a p99 budget allows over it
P99_SHARE = 0.01
Decision = Literal["promote", "rollback", "extend", "halt"]
PROMOTE: Decision = "promote"
ROLLBACK: Decision = "rollback"
EXTEND: Decision = "extend"
HALT: Decision = "halt"
Status = Literal["non_inferior", "inferior", "undecided"]


@dataclass(frozen=True)
class MetricVerdict:
    """One metric's interval, margin and status."""

    metric: str
    comparison: str  # "unpaired" | "paired" | "challenger alone"
    margin: float
    status: Status
    bounds: Bounds | None
    champion: float | None
    challenger: float | None
    n_champion: int
    n_challenger: int
    text: str

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["bounds"] = self.bounds.to_dict() if self.bounds is not None else None
        for key in ("champion", "challenger", "margin"):
            out[key] = _finite(out[key])
        return out


@dataclass(frozen=True)
class CanaryDecision:
    """The decision on a canary's evidence, with every number it was taken on."""

    decision: Decision
    reasons: list[str]
    metrics: list[MetricVerdict]
    srm: SrmResult
    alpha: float
    metric_alpha: float
    final: bool
    evidence: CanaryEvidence
    guard: str | None = None
    budget: dict[str, Any] = field(default_factory=dict)
    #: the KPI values the guards judged against (settings.kpi)
    kpi: dict[str, Any] = field(default_factory=dict)

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons)

    def to_dict(self) -> dict[str, Any]:
        return {
            "decision": self.decision,
            "reasons": self.reasons,
            "metrics": [m.to_dict() for m in self.metrics],
            "srm": self.srm.to_dict(),
            "alpha": self.alpha,
            "metric_alpha": self.metric_alpha,
            "final": self.final,
            "guard": self.guard,
            "budget": self.budget,
            "kpi": self.kpi,
            "test": (
                "always-valid confidence sequences (normal-mixture mSPRT, Johari et al. 2022), "
                "non-inferiority per metric, Bonferroni over metrics"
            ),
            "evidence": self.evidence.to_dict(),
        }


def _finite(value: Any) -> Any:
    return value if not isinstance(value, float) or math.isfinite(value) else None


def _num(value: float, spec: str = ".3f") -> str:
    """A number for people: ``-`` where there is none yet (an empty variant)."""
    return format(value, spec) if math.isfinite(value) else "-"


def _status(bounds: Bounds, margin: float) -> Status:
    if bounds.low > margin:
        return "inferior"
    if bounds.high < margin:
        return "non_inferior"
    return "undecided"


_LABEL = {"non_inferior": "non-inferior", "inferior": "INFERIOR", "undecided": "undecided"}


def _verdict(
    metric: str,
    comparison: str,
    margin: float,
    bounds: Bounds | None,
    champion: float | None,
    challenger: float | None,
    n: tuple[int, int],
    enough: bool,
    show: str,
) -> MetricVerdict:
    if bounds is None or not enough:
        status: Status = "undecided"
        text = f"{show}: not enough evidence yet ({n[1]} challenger, {n[0]} champion)"
    else:
        status = _status(bounds, margin)
        text = f"{show}: {bounds.text(3)} vs margin {margin:+.3f}: {_LABEL[status]}"
    return MetricVerdict(
        metric, comparison, margin, status, bounds, champion, challenger, n[0], n[1], text
    )


def _error_rate(ev: CanaryEvidence, r: RolloutSettings, alpha: float) -> MetricVerdict:
    """Error rates are rare events: a plug-in variance shrinks exactly when few errors were
    seen, and the interval under-covers. The challenger's variance is therefore at least the
    variance it would have at the margin (rate = champion's + margin), as in Farrington and
    Manning's restricted test of non-inferiority."""
    a, b = ev.champion.error, ev.challenger.error
    margin = r.max_error_rate_increase
    if a.n and b.n:
        q = min(0.5, (a.total + 1.0) / (a.n + 2.0) + margin)
        var_b = max(b.variance, q * (1.0 - q))
        variance = a.variance_of_mean + var_b / b.n
        bounds = bounds_for(b.mean - a.mean, variance, alpha, margin)
    else:
        bounds = difference_bounds(a, b, alpha, margin)
    enough = min(a.n, b.n) >= r.min_requests
    show = f"error rate {b.mean if b.n else 0:.2%} vs {a.mean if a.n else 0:.2%}, difference"
    return _verdict(
        "error_rate", "unpaired", margin, bounds, a.mean, b.mean, (a.n, b.n), enough, show
    )


def _latency(ev: CanaryEvidence, r: RolloutSettings, alpha: float) -> MetricVerdict:
    a, b = ev.champion.latency, ev.challenger.latency
    margin = math.log(r.max_latency_ratio)
    bounds = difference_bounds(a, b, alpha, margin)
    enough = min(a.n, b.n) >= r.min_requests
    ga, gb = math.exp(a.mean) if a.n else math.nan, math.exp(b.mean) if b.n else math.nan
    show = (
        f"model-call latency per row (geometric mean) {_num(gb, '.2f')} ms vs "
        f"{_num(ga, '.2f')} ms, log ratio"
    )
    return _verdict("latency", "unpaired", margin, bounds, ga, gb, (a.n, b.n), enough, show)


def _labelled(
    ev: CanaryEvidence, r: RolloutSettings, a: MeanStats, b: MeanStats
) -> tuple[tuple[int, int], bool]:
    """Labelled rows per variant, and whether a quality metric may be judged on them."""
    rows = (ev.champion.labeled, ev.challenger.labeled)
    return rows, min(rows) >= r.min_labeled_rows and min(a.n, b.n) >= 2


def _log_loss(ev: CanaryEvidence, r: RolloutSettings, alpha: float) -> MetricVerdict:
    a, b = ev.champion.log_loss, ev.challenger.log_loss
    margin = r.log_loss_margin
    paired = ev.paired_log_loss
    rows, enough = _labelled(ev, r, a, b)
    if paired is not None and paired.n >= 2 and enough:
        bounds = mean_bounds(paired, alpha, margin)
        comparison = "paired"
    else:
        bounds = difference_bounds(a, b, alpha, margin)
        comparison = "unpaired"
    n = rows
    show = f"log loss {_num(b.mean)} vs {_num(a.mean)}, difference"
    return _verdict("log_loss", comparison, margin, bounds, a.mean, b.mean, n, enough, show)


def _folded(x: MeanStats, alpha: float, tau: float) -> tuple[float, float, float]:
    """``|E x|``: estimate and interval from the interval of ``E x``."""
    raw = mean_bounds(x, alpha, tau)
    low = 0.0 if raw.low <= 0.0 <= raw.high else min(abs(raw.low), abs(raw.high))
    return abs(raw.estimate), low, max(abs(raw.low), abs(raw.high))


def _gap_change_range(m: tuple[float, float], d: tuple[float, float]) -> tuple[float, float]:
    """Range of ``|m + d| - |m|`` over the box ``m x d`` (piecewise linear: its extremes lie at
    corners or where ``m``, ``m + d`` cross zero)."""
    ms = [m[0], m[1], *(v for v in (0.0, -d[0], -d[1]) if m[0] <= v <= m[1])]
    values: list[float] = []
    for mv in ms:
        ds = [d[0], d[1], *([-mv] if d[0] <= -mv <= d[1] else [])]
        values.extend(abs(mv + dv) - abs(mv) for dv in ds)
    return min(values), max(values)


def _calibration(ev: CanaryEvidence, r: RolloutSettings, alpha: float) -> MetricVerdict:
    """Calibration gap ``|mean(p - y)|`` of the challenger minus the champion's. After a shift
    of the late rate both models are off; the challenger must be no worse than the champion by
    more than the margin. Unpaired, the two gaps' intervals (``alpha / 2`` each, union bound)
    are combined; in shadow mode the challenger's gap is the champion's residual ``m`` plus the
    paired probability shift ``d``, and the difference is the range of ``|m + d| - |m|`` over
    both intervals (again ``alpha / 2`` each)."""
    a, b = ev.champion.residual, ev.challenger.residual
    margin = r.calibration_margin
    shift = ev.paired_shift
    n, enough = _labelled(ev, r, a, b)
    if shift is not None and shift.n >= 2 and enough:
        ra = mean_bounds(a, alpha / 2, margin)
        rd = mean_bounds(shift, alpha / 2, margin)
        low, high = _gap_change_range((ra.low, ra.high), (rd.low, rd.high))
        ga, gb = abs(a.mean), abs(a.mean + shift.mean)
        comparison = "paired"
    else:
        ga, a_low, a_high = _folded(a, alpha / 2, margin)
        gb, b_low, b_high = _folded(b, alpha / 2, margin)
        low, high = b_low - a_high, b_high - a_low
        comparison = "unpaired"
    bounds = Bounds(gb - ga, low, high, math.nan, alpha, math.nan)
    show = (
        f"calibration gap |mean p - late rate| {_num(gb)} vs {_num(ga)} "
        f"(champion predicts {_num(a.mean, '+.3f')} vs the late rate), difference"
    )
    return _verdict("calibration", comparison, margin, bounds, ga, gb, n, enough, show)


JUDGES = {
    "error_rate": _error_rate,
    "latency": _latency,
    "log_loss": _log_loss,
    "calibration": _calibration,
}


def _guard(ev: CanaryEvidence, r: RolloutSettings, alpha: float, kpis: KpiSettings) -> str | None:
    """A KPI broken beyond doubt by the challenger (its own confidence sequence lies beyond
    it): roll back at once, whatever the champion does. The error rate against
    ``kpi.max_error_rate``; the share of requests slower than the latency budget against 1%
    (``kpi.p99_latency_ms`` is a p99)."""
    b = ev.challenger
    if b.requests < r.guard_min_requests:
        return None
    limit = kpis.max_error_rate
    bounds = mean_bounds(b.error, alpha, limit)
    if bounds.low > limit:
        return (
            f"hard guard: challenger error rate {b.error_rate:.1%} over {b.requests} requests "
            f"(at least {bounds.low:.1%}) > KPI max error rate {limit:.1%}"
        )
    budget = ev.latency_budget_ms
    if budget is not None and b.slow.n >= r.guard_min_requests:
        slow = mean_bounds(b.slow, alpha, P99_SHARE)
        if slow.low > P99_SHARE:
            return (
                f"hard guard: {b.slow.mean:.1%} of {b.slow.n} challenger requests took longer "
                f"than the KPI p99 latency budget of {budget:g} ms (at least {slow.low:.1%}, "
                f"> {P99_SHARE:.0%}): its p99 is over the budget"
            )
    return None


def decide(
    evidence: CanaryEvidence,
    rollout: RolloutSettings,
    final: bool,
    kpis: KpiSettings | None = None,
) -> CanaryDecision:
    """The decision on ``evidence`` (see the module docstring); ``final`` when the evidence
    budget (requests or time) is spent, which turns ``extend`` into ``rollout.on_budget``.
    ``kpis``: ``settings.kpi`` (None: the value ``rollout`` holds under the deprecated name,
    as in decision records stored before the KPI section existed)."""
    kpis = kpis or KpiSettings.from_sections(rollout=rollout)
    kpi = {"max_error_rate": kpis.max_error_rate, "p99_latency_ms": evidence.latency_budget_ms}
    k = len(rollout.metrics)
    metric_alpha = rollout.alpha / k
    by_key = evidence.keys > 0  # the split randomises routing keys (sticky), not requests
    srm = sample_ratio_mismatch(
        evidence.treated_keys if by_key else evidence.treated,
        evidence.keys if by_key else evidence.routed,
        evidence.weight / 100.0,
        rollout.srm_alpha,
        rollout.srm_min_requests,
    )
    verdicts = [JUDGES[m](evidence, rollout, metric_alpha) for m in rollout.metrics]
    budget = {
        "routed": evidence.routed,
        "max_requests": rollout.max_requests,
        "max_minutes": rollout.max_minutes,
        "on_budget": rollout.on_budget,
    }

    def done(decision: Decision, reasons: list[str], guard: str | None = None) -> CanaryDecision:
        return CanaryDecision(
            decision,
            reasons,
            verdicts,
            srm,
            rollout.alpha,
            metric_alpha,
            final,
            evidence,
            guard,
            budget,
            kpi,
        )

    if srm.mismatch:
        return done(HALT, [f"sample-ratio mismatch, the split is broken: {srm.text()}"])
    if evidence.challenger.requests == 0 and final:
        return done(ROLLBACK, ["the challenger served no routed request during the rollout"])
    guard = _guard(evidence, rollout, metric_alpha, kpis)
    if guard is not None:
        return done(ROLLBACK, [guard], guard)
    inferior = [v for v in verdicts if v.status == "inferior"]
    if inferior:
        return done(ROLLBACK, [v.text for v in inferior])
    if all(v.status == "non_inferior" for v in verdicts):
        return done(
            PROMOTE,
            [
                f"non-inferior on every metric over {evidence.routed} routed requests "
                f"(error rate of this decision <= {rollout.alpha:g})",
                *(v.text for v in verdicts),
            ],
        )
    open_ = [v.text for v in verdicts if v.status == "undecided"]
    if final:
        return done(
            rollout.on_budget,
            [
                f"evidence budget spent after {evidence.routed} routed requests without a "
                f"conclusion: {rollout.on_budget} (the configured default, not a finding of "
                "the test: no error rate applies)",
                *open_,
            ],
        )
    return done(EXTEND, [f"not enough evidence after {evidence.routed} routed requests", *open_])


def look(
    settings: Settings,
    snap: RegistrySnapshot,
    frame: Any,
    size: int,
    until: datetime | None,
    final: bool,
) -> CanaryDecision:
    """The decision on the first ``size`` routed requests of ``frame`` (the rollout's capture)
    that arrived by ``until``, for the rollout in ``snap``."""
    r = settings.rollout
    evidence = gather_evidence(
        frame,
        snap.champion,
        snap.challenger,
        snap.mode or settings.serving.mode,
        snap.weight,
        r.latency_floor_ms,
        limit=size,
        until=until,
        latency_budget_ms=settings.kpi.p99_latency_ms,
    )
    return decide(evidence, r, final, settings.kpi)


def current_decision(settings: Settings, snap: RegistrySnapshot | None = None) -> CanaryDecision:
    """The decision the running rollout's evidence supports now (all routed requests so far,
    not the budget's end: ``extend`` stays ``extend``)."""
    snap = snap or registry_snapshot(settings)
    frame = read_rollout_frame(settings, snap.rollout_started)
    until = datetime.now(UTC) - timedelta(seconds=settings.rollout.label_wait_s)
    return look(settings, snap, frame, settings.rollout.max_requests, until, final=False)


def rollout_status(settings: Settings | None = None) -> dict[str, Any]:
    """Registry state and, during a rollout, the decision its evidence supports now."""
    settings = settings or get_settings()
    snap = registry_snapshot(settings)
    out: dict[str, Any] = {
        "model": snap.name,
        "champion": snap.champion,
        "challenger": snap.challenger,
        "weight": snap.weight,
        "mode": snap.mode or settings.serving.mode,
        "rollout_started": snap.rollout_started,
    }
    if snap.rollout_started is not None and snap.challenger is not None:
        now = current_decision(settings, snap)
        # what the evidence so far would support; the rollout itself decides only at its looks
        out["would_decide_now"] = {
            "decision": now.decision,
            "reasons": now.reasons,
            "metrics": {m.metric: m.text for m in now.metrics},
            "sample_ratio": now.srm.text(),
            "routed_requests": now.evidence.routed,
        }
        out["live"] = now.to_dict()
    return out
