"""Automatic canary analysis: put the challenger on a weight, watch live numbers, decide.

The live numbers come from the inference log (:mod:`driftloop.data.capture`), so the analysis sees
every serving replica. Per variant, since the rollout started: requests, error rate, p95 latency
(per request), mean predicted probability and, where labels have arrived, ROC AUC. The challenger
is rolled back when it is worse than the champion beyond ``settings.rollout`` thresholds, else
promoted; the decision and its numbers go to the audit log (:mod:`driftloop.registry.promotion`).
The rollout's start is a registered-model tag, so ``status`` works from any process.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from driftloop.errors import ConflictError
from driftloop.monitoring.canary import VariantStats, canary_metrics, live_stats
from driftloop.registry.client import registry_snapshot
from driftloop.registry.promotion import promote, rollback, start_rollout
from driftloop.settings import Settings, get_settings

logger = logging.getLogger(__name__)

PROMOTE, ROLLBACK, WAIT = "promote", "rollback", "wait"


@dataclass
class CanaryVerdict:
    decision: str
    reasons: list[str]
    champion: VariantStats
    challenger: VariantStats
    started: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def compare(
    champion: VariantStats, challenger: VariantStats, settings: Settings | None = None
) -> tuple[str, list[str]]:
    """``(promote|rollback, reasons)`` from the thresholds of ``settings.rollout``."""
    r = (settings or get_settings()).rollout
    reasons: list[str] = []
    if challenger.requests == 0:
        return ROLLBACK, ["the challenger served no request during the rollout"]
    excess = challenger.error_rate - champion.error_rate
    if excess > r.max_error_rate_increase:
        reasons.append(
            f"error rate {challenger.error_rate:.2%} vs champion {champion.error_rate:.2%} "
            f"(+{excess:.2%} > {r.max_error_rate_increase:.2%})"
        )
    if challenger.p95_latency_ms is not None and champion.p95_latency_ms is not None:
        floor = r.latency_floor_ms
        ratio = max(challenger.p95_latency_ms, floor) / max(champion.p95_latency_ms, floor)
        if ratio > r.max_p95_latency_ratio:
            reasons.append(
                f"p95 latency {challenger.p95_latency_ms:.1f} ms vs champion "
                f"{champion.p95_latency_ms:.1f} ms in the model call "
                f"(x{ratio:.1f} > x{r.max_p95_latency_ratio})"
            )
    if challenger.calibration_gap is not None and champion.calibration_gap is not None:
        # Labels arrived: a retrain after drift is meant to move the predictions, so judge the
        # move against the truth (the observed late rate), not against the old model.
        worse = challenger.calibration_gap - champion.calibration_gap
        if worse > r.max_prediction_shift:
            reasons.append(
                f"mean predicted probability {challenger.mean_probability:.3f} is "
                f"{challenger.calibration_gap:.3f} from the observed late rate vs champion's "
                f"{champion.calibration_gap:.3f} (worse by {worse:.3f} > {r.max_prediction_shift})"
            )
    elif challenger.mean_probability is not None and champion.mean_probability is not None:
        shift = abs(challenger.mean_probability - champion.mean_probability)
        if shift > r.max_prediction_shift:
            reasons.append(
                f"mean predicted probability {challenger.mean_probability:.3f} vs champion "
                f"{champion.mean_probability:.3f} (shift {shift:.3f} > {r.max_prediction_shift})"
            )
    if challenger.auc is not None and champion.auc is not None:
        drop = champion.auc - challenger.auc
        if drop > r.max_auc_drop:
            reasons.append(
                f"live ROC AUC {challenger.auc:.3f} vs champion {champion.auc:.3f} "
                f"(drop {drop:.3f} > {r.max_auc_drop})"
            )
    if reasons:
        return ROLLBACK, reasons
    auc = (
        f", live ROC AUC {challenger.auc:.3f} vs {champion.auc:.3f}"
        if challenger.auc is not None and champion.auc is not None
        else ""
    )
    return PROMOTE, [
        f"challenger within thresholds over {challenger.requests} requests: error rate "
        f"{challenger.error_rate:.2%}, p95 {_ms(challenger.p95_latency_ms)} in the model call, "
        f"{_ms(challenger.p95_request_ms)} per request{auc}"
    ]


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


def start(
    weight: int | None = None, actor: str = "rollout", settings: Settings | None = None
) -> dict[str, Any]:
    """Put the challenger on ``weight`` percent (default settings.rollout.canary_weight) and
    stamp the start in the registry. 409 without a challenger."""
    settings = settings or get_settings()
    weight = settings.rollout.canary_weight if weight is None else int(weight)
    return start_rollout(weight, actor, settings)


def judge_canary(settings: Settings | None = None, final: bool = True) -> CanaryVerdict:
    """Compare challenger and champion on the numbers since the rollout started. Before
    ``min_requests`` challenger requests and with ``final=False`` the decision is ``wait``."""
    settings = settings or get_settings()
    snap = registry_snapshot(settings)
    if snap.challenger is None:
        raise ConflictError(f"model {snap.name} has no challenger to judge")
    since = snap.rollout_started
    champ, chall = live_stats(snap.champion, snap.challenger, since, settings)
    if not final and chall.requests < settings.rollout.min_requests:
        return CanaryVerdict(
            WAIT, [f"{chall.requests} challenger requests so far"], champ, chall, since
        )
    decision, reasons = compare(champ, chall, settings)
    return CanaryVerdict(decision, reasons, champ, chall, since, canary_metrics(champ, chall))


def wait_for_evidence(
    settings: Settings | None = None,
    min_requests: int | None = None,
    max_minutes: float | None = None,
    poll_s: float | None = None,
    on_poll: Callable[[CanaryVerdict], None] | None = None,
) -> CanaryVerdict:
    """Poll until the challenger has ``min_requests`` requests, a failure is already clear
    (error-rate threshold crossed after 20 requests), or ``max_minutes`` passed."""
    settings = settings or get_settings()
    r = settings.rollout
    need = r.min_requests if min_requests is None else min_requests
    deadline = time.monotonic() + 60 * (r.max_minutes if max_minutes is None else max_minutes)
    every = r.poll_s if poll_s is None else poll_s
    tuned = settings.model_copy(update={"rollout": r.model_copy(update={"min_requests": need})})
    while True:
        verdict = judge_canary(tuned, final=False)
        if on_poll:
            on_poll(verdict)
        if verdict.decision != WAIT:
            return verdict
        chall, champ = verdict.challenger, verdict.champion
        failing = chall.requests >= 20 and (
            chall.error_rate - champ.error_rate > r.max_error_rate_increase
        )
        if failing or time.monotonic() >= deadline:
            return judge_canary(tuned, final=True)
        time.sleep(every)


def act(
    verdict: CanaryVerdict, actor: str = "rollout", settings: Settings | None = None
) -> dict[str, Any]:
    """Promote or roll back by the verdict; the audit record carries the reasons and numbers."""

    settings = settings or get_settings()
    reason = "; ".join(verdict.reasons)
    if verdict.decision == PROMOTE:
        return promote(actor, reason, verdict.metrics, settings)
    if verdict.decision == ROLLBACK:
        return rollback(actor, reason, verdict.metrics, settings)
    raise ConflictError(f"no decision yet: {reason}")


def run_rollout(
    weight: int | None = None,
    min_requests: int | None = None,
    max_minutes: float | None = None,
    poll_s: float | None = None,
    actor: str = "rollout",
    settings: Settings | None = None,
    on_poll: Callable[[CanaryVerdict], None] | None = None,
) -> tuple[CanaryVerdict, dict[str, Any]]:
    """start -> wait for evidence -> promote or roll back. Returns the verdict and audit record."""
    settings = settings or get_settings()
    start(weight, actor, settings)
    verdict = wait_for_evidence(settings, min_requests, max_minutes, poll_s, on_poll)
    record = act(verdict, actor, settings)
    logger.info("rollout decided %s: %s", verdict.decision, "; ".join(verdict.reasons))
    return verdict, record
