"""Automatic canary analysis: put the challenger on a weight, watch live numbers, decide.

The live numbers come from the inference log (:mod:`driftloop.capture`), so the analysis sees
every serving replica. Per variant, since the rollout started: requests, error rate, p95 latency
(per request), mean predicted probability and, where labels have arrived, ROC AUC. The challenger
is rolled back when it is worse than the champion beyond ``settings.rollout`` thresholds, else
promoted; the decision and its numbers go to the audit log (:mod:`driftloop.registry.promotion`).
The rollout's start is a registered-model tag, so ``status`` works from any process.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from driftloop.errors import ConflictError
from driftloop.schema import LABEL
from driftloop.settings import Settings, get_settings

logger = logging.getLogger(__name__)

STARTED_TAG = "driftloop.rollout_started"
PROMOTE, ROLLBACK, WAIT = "promote", "rollback", "wait"


@dataclass
class VariantStats:
    version: str | None
    requests: int = 0
    rows: int = 0
    errors: int = 0
    error_rate: float = 0.0
    #: p95 of the model call (``model_ms``), what a canary judges: the whole-request time of
    #: a challenger also holds the server's thread hop, which its promotion removes
    p95_latency_ms: float | None = None
    #: p95 of the whole request as the caller saw it (reported, not judged)
    p95_request_ms: float | None = None
    mean_probability: float | None = None
    labeled: int = 0
    auc: float | None = None
    #: |mean predicted probability - observed late rate| over labeled rows (when judged)
    calibration_gap: float | None = None


@dataclass
class Verdict:
    decision: str
    reasons: list[str]
    champion: VariantStats
    challenger: VariantStats
    started: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    if len(np.unique(labels)) < 2:
        return None
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, scores))


def variant_stats(df: pd.DataFrame, version: str | None, min_labeled: int) -> VariantStats:
    """Live numbers of one variant's captured rows."""
    stats = VariantStats(version=version)
    if df.empty:
        return stats
    stats.rows = len(df)
    model_ms = df["model_ms"] if "model_ms" in df.columns else pd.Series(np.nan, index=df.index)
    per_request = (
        df.assign(model=model_ms.fillna(df["latency_ms"]))  # files from before model_ms
        .groupby("request_id", sort=False)
        .agg(
            latency=("latency_ms", "max"),
            model=("model", "max"),
            failed=("error", lambda s: s.notna().any()),
        )
    )
    stats.requests = len(per_request)
    stats.errors = int(per_request["failed"].sum())
    stats.error_rate = stats.errors / stats.requests
    stats.p95_request_ms = float(np.percentile(per_request["latency"], 95))
    ok_model = per_request["model"].dropna()
    if not ok_model.empty:
        stats.p95_latency_ms = float(np.percentile(ok_model, 95))
    ok = df[df["error"].isna() & df["late_probability"].notna()]
    if not ok.empty:
        stats.mean_probability = float(ok["late_probability"].mean())
    if LABEL in ok.columns:
        labeled = ok[ok[LABEL].notna()]
        stats.labeled = len(labeled)
        if stats.labeled >= min_labeled:
            y = labeled[LABEL].to_numpy(dtype=int)
            p = labeled["late_probability"].to_numpy(dtype=float)
            stats.auc = _auc(y, p)
            stats.calibration_gap = float(abs(p.mean() - y.mean()))
    return stats


def live_stats(
    champion: str | None,
    challenger: str | None,
    since: datetime | str | None,
    settings: Settings | None = None,
) -> tuple[VariantStats, VariantStats]:
    """Champion and challenger numbers from the inference log since ``since``. The champion's
    are its served answers; the challenger's are every attempt (canary or shadow)."""
    from driftloop.capture import read_predictions

    settings = settings or get_settings()
    df = read_predictions(settings, start=since)
    min_labeled = settings.rollout.min_labeled_rows
    if df.empty:
        return VariantStats(champion), VariantStats(challenger)
    version = df["model_version"].astype(str)
    champ = df[(df["variant"] == "champion") & (version == str(champion)) & df["served"]]
    chall = df[(df["variant"] == "challenger") & (version == str(challenger))]
    return (
        variant_stats(champ, champion, min_labeled),
        variant_stats(chall, challenger, min_labeled),
    )


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


def _metrics(champion: VariantStats, challenger: VariantStats) -> dict[str, Any]:
    def clean(v: Any) -> Any:
        return None if isinstance(v, float) and not math.isfinite(v) else v

    return {
        "champion": {k: clean(v) for k, v in asdict(champion).items()},
        "challenger": {k: clean(v) for k, v in asdict(challenger).items()},
    }


def start(
    weight: int | None = None, actor: str = "rollout", settings: Settings | None = None
) -> dict[str, Any]:
    """Put the challenger on ``weight`` percent (default settings.rollout.canary_weight) and
    stamp the start in the registry. 409 without a challenger."""
    from driftloop.registry.client import registry_snapshot, set_model_tag
    from driftloop.registry.promotion import set_weight

    settings = settings or get_settings()
    weight = settings.rollout.canary_weight if weight is None else int(weight)
    snap = registry_snapshot(settings)
    if snap.challenger is None:
        raise ConflictError(f"model {snap.name} has no challenger to roll out")
    stamp = datetime.now(UTC).isoformat()
    set_model_tag(STARTED_TAG, f"{stamp}|{snap.challenger}", settings)
    return set_weight(
        weight, actor, f"rollout of version {snap.challenger} started", settings, "rollout_start"
    )


def rollout_status(settings: Settings | None = None) -> dict[str, Any]:
    """Registry state and the live numbers of the running rollout (if any)."""
    from driftloop.registry.client import registry_snapshot

    settings = settings or get_settings()
    snap = registry_snapshot(settings)
    stamp, _, version = snap.tags.get(STARTED_TAG, "").partition("|")
    active = snap.challenger is not None and version == snap.challenger and bool(stamp)
    out: dict[str, Any] = {
        "model": snap.name,
        "champion": snap.champion,
        "challenger": snap.challenger,
        "weight": snap.weight,
        "mode": snap.mode or settings.serving.mode,
        "rollout_started": stamp if active else None,
    }
    if active:
        champ, chall = live_stats(snap.champion, snap.challenger, stamp, settings)
        out["live"] = _metrics(champ, chall)
    return out


def judge(settings: Settings | None = None, final: bool = True) -> Verdict:
    """Compare challenger and champion on the numbers since the rollout started. Before
    ``min_requests`` challenger requests and with ``final=False`` the decision is ``wait``."""
    from driftloop.registry.client import registry_snapshot

    settings = settings or get_settings()
    snap = registry_snapshot(settings)
    if snap.challenger is None:
        raise ConflictError(f"model {snap.name} has no challenger to judge")
    stamp, _, version = snap.tags.get(STARTED_TAG, "").partition("|")
    since = stamp if stamp and version == snap.challenger else None
    champ, chall = live_stats(snap.champion, snap.challenger, since, settings)
    if not final and chall.requests < settings.rollout.min_requests:
        return Verdict(WAIT, [f"{chall.requests} challenger requests so far"], champ, chall, since)
    decision, reasons = compare(champ, chall, settings)
    return Verdict(decision, reasons, champ, chall, since, _metrics(champ, chall))


def wait_for_evidence(
    settings: Settings | None = None,
    min_requests: int | None = None,
    max_minutes: float | None = None,
    poll_s: float | None = None,
    on_poll: Callable[[Verdict], None] | None = None,
) -> Verdict:
    """Poll until the challenger has ``min_requests`` requests, a failure is already clear
    (error-rate threshold crossed after 20 requests), or ``max_minutes`` passed."""
    settings = settings or get_settings()
    r = settings.rollout
    need = r.min_requests if min_requests is None else min_requests
    deadline = time.monotonic() + 60 * (r.max_minutes if max_minutes is None else max_minutes)
    every = r.poll_s if poll_s is None else poll_s
    tuned = settings.model_copy(update={"rollout": r.model_copy(update={"min_requests": need})})
    while True:
        verdict = judge(tuned, final=False)
        if on_poll:
            on_poll(verdict)
        if verdict.decision != WAIT:
            return verdict
        chall, champ = verdict.challenger, verdict.champion
        failing = chall.requests >= 20 and (
            chall.error_rate - champ.error_rate > r.max_error_rate_increase
        )
        if failing or time.monotonic() >= deadline:
            return judge(tuned, final=True)
        time.sleep(every)


def act(verdict: Verdict, actor: str = "rollout", settings: Settings | None = None) -> dict:
    """Promote or roll back by the verdict; the audit record carries the reasons and numbers."""
    from driftloop.registry.promotion import promote, rollback

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
    on_poll: Callable[[Verdict], None] | None = None,
) -> tuple[Verdict, dict[str, Any]]:
    """start -> wait for evidence -> promote or roll back. Returns the verdict and audit record."""
    settings = settings or get_settings()
    start(weight, actor, settings)
    verdict = wait_for_evidence(settings, min_requests, max_minutes, poll_s, on_poll)
    record = act(verdict, actor, settings)
    logger.info("rollout decided %s: %s", verdict.decision, "; ".join(verdict.reasons))
    return verdict, record
