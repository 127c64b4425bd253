"""The canary's decision: promote, roll back or extend, from always-valid evidence.

Each judged metric is oriented so that a positive difference means *the challenger is worse*,
and has a non-inferiority margin (``settings.rollout``): how much worse is still acceptable.

===============  =========================================  ====================================
metric           difference (challenger - champion)          margin
===============  =========================================  ====================================
``error_rate``   per-request error rate                      ``max_error_rate_increase``
``latency``      mean log model-call ms (log of the ratio    ``log(max_latency_ratio)``
                 of geometric means)
``log_loss``     per labelled row; paired per row in shadow  ``log_loss_margin``
                 mode
``calibration``  |mean(p - y)| (calibration gap) per variant  ``calibration_margin``
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
comparison; the challenger is rolled back and nothing is promoted); **rollback** on the hard
error guard (challenger error rate above ``error_rate_guard`` after ``guard_min_requests``) or
on any inferior metric; **promote** when every metric is non-inferior; else **extend**, which at
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
    difference_bounds,
    mean_bounds,
    sample_ratio_mismatch,
)
from driftloop.settings import RolloutSettings, Settings, get_settings

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
            "test": (
                "always-valid confidence sequences (normal-mixture mSPRT, Johari et al. 2022), "
                "non-inferiority per metric, Bonferroni over metrics"
            ),
            "evidence": self.evidence.to_dict(),
        }


def _finite(value: Any) -> Any:
    return value if not isinstance(value, float) or math.isfinite(value) else None


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
    a, b = ev.champion.error, ev.challenger.error
    margin = r.max_error_rate_increase
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
    show = f"model-call latency (geometric mean) {gb:.2f} ms vs {ga:.2f} ms, log ratio"
    return _verdict("latency", "unpaired", margin, bounds, ga, gb, (a.n, b.n), enough, show)


def _log_loss(ev: CanaryEvidence, r: RolloutSettings, alpha: float) -> MetricVerdict:
    a, b = ev.champion.log_loss, ev.challenger.log_loss
    margin = r.log_loss_margin
    paired = ev.paired_log_loss
    if paired is not None and paired.n >= r.min_labeled_rows:
        bounds = mean_bounds(paired, alpha, margin)
        enough, comparison = True, "paired"
        n = (paired.n, paired.n)
    else:
        bounds = difference_bounds(a, b, alpha, margin)
        enough, comparison = min(a.n, b.n) >= r.min_labeled_rows, "unpaired"
        n = (a.n, b.n)
    show = f"log loss {b.mean:.3f} vs {a.mean:.3f}, difference"
    return _verdict("log_loss", comparison, margin, bounds, a.mean, b.mean, n, enough, show)


def _folded(x: MeanStats, alpha: float, tau: float) -> tuple[float, float, float]:
    """``|E x|``: estimate and interval from the interval of ``E x``."""
    raw = mean_bounds(x, alpha, tau)
    low = 0.0 if raw.low <= 0.0 <= raw.high else min(abs(raw.low), abs(raw.high))
    return abs(raw.estimate), low, max(abs(raw.low), abs(raw.high))


def _calibration(ev: CanaryEvidence, r: RolloutSettings, alpha: float) -> MetricVerdict:
    """Calibration gap ``|mean(p - y)|`` of the challenger minus the champion's, each from its
    own labelled rows. After a shift of the late rate both models are off; the challenger is
    judged on being no worse than the champion by more than the margin. The difference's
    interval combines the two gaps' intervals at ``alpha / 2`` each (union bound)."""
    a, b = ev.champion.residual, ev.challenger.residual
    margin = r.calibration_margin
    ga, a_low, a_high = _folded(a, alpha / 2, margin)
    gb, b_low, b_high = _folded(b, alpha / 2, margin)
    diff = gb - ga
    bounds = Bounds(diff, b_low - a_high, b_high - a_low, math.nan, alpha, math.nan)
    enough = min(a.n, b.n) >= r.min_labeled_rows
    show = (
        f"calibration gap |mean p - late rate| {gb:.3f} vs {ga:.3f} "
        f"(predicts {b.mean if b.n else math.nan:+.3f} vs {a.mean if a.n else math.nan:+.3f}), "
        "difference"
    )
    return _verdict("calibration", "unpaired", margin, bounds, ga, gb, (a.n, b.n), enough, show)


JUDGES = {
    "error_rate": _error_rate,
    "latency": _latency,
    "log_loss": _log_loss,
    "calibration": _calibration,
}


def _guard(ev: CanaryEvidence, r: RolloutSettings) -> str | None:
    b = ev.challenger
    if b.requests >= r.guard_min_requests and b.error_rate > r.error_rate_guard:
        return (
            f"hard guard: challenger error rate {b.error_rate:.1%} over {b.requests} requests "
            f"> {r.error_rate_guard:.1%}"
        )
    return None


def decide(evidence: CanaryEvidence, rollout: RolloutSettings, final: bool) -> CanaryDecision:
    """The decision on ``evidence`` (see the module docstring); ``final`` when the evidence
    budget (requests or time) is spent, which turns ``extend`` into ``rollout.on_budget``."""
    k = len(rollout.metrics)
    metric_alpha = rollout.alpha / k
    srm = sample_ratio_mismatch(
        evidence.treated,
        evidence.routed,
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
        )

    if srm.mismatch:
        return done(HALT, [f"sample-ratio mismatch, the split is broken: {srm.text()}"])
    if evidence.challenger.requests == 0 and final:
        return done(ROLLBACK, ["the challenger served no routed request during the rollout"])
    guard = _guard(evidence, rollout)
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
                f"conclusion: {rollout.on_budget} (the configured default)",
                *open_,
            ],
        )
    return done(EXTEND, [f"not enough evidence after {evidence.routed} routed requests", *open_])


def current_decision(settings: Settings, snap: RegistrySnapshot | None = None) -> CanaryDecision:
    """The decision the running rollout's evidence supports now (all routed requests so far,
    not the budget's end: ``extend`` stays ``extend``)."""
    snap = snap or registry_snapshot(settings)
    r = settings.rollout
    frame = read_rollout_frame(settings, snap.rollout_started)
    until = datetime.now(UTC) - timedelta(seconds=r.label_wait_s)
    evidence = gather_evidence(
        frame,
        snap.champion,
        snap.challenger,
        snap.mode or settings.serving.mode,
        snap.weight,
        r.latency_floor_ms,
        limit=r.max_requests,
        until=until,
    )
    return decide(evidence, r, final=False)


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
        out["live"] = current_decision(settings, snap).to_dict()
    return out
