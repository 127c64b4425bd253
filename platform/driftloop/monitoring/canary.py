"""Live numbers of a canary, per variant, from the inference log (:mod:`driftloop.data.capture`),
so they cover every serving replica: requests, error rate, p95 latency of the model call and of
the whole request, mean predicted probability and, where labels have arrived, ROC AUC and the
calibration gap. :mod:`driftloop.loop.rollout` decides on them; the admin API shows them."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from driftloop.data.capture import read_predictions
from driftloop.registry.client import registry_snapshot
from driftloop.schema import LABEL
from driftloop.settings import Settings, get_settings
from driftloop.stats import finite_or_none, roc_auc


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
            stats.auc = finite_or_none(roc_auc(y, p))
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


def canary_metrics(champion: VariantStats, challenger: VariantStats) -> dict[str, Any]:
    """Both variants' numbers as JSON-safe dicts (non-finite floats become null)."""

    def clean(v: Any) -> Any:
        return finite_or_none(v) if isinstance(v, float) else v

    return {
        "champion": {k: clean(v) for k, v in asdict(champion).items()},
        "challenger": {k: clean(v) for k, v in asdict(challenger).items()},
    }


def rollout_status(settings: Settings | None = None) -> dict[str, Any]:
    """Registry state and the live numbers of the running rollout (if any)."""
    settings = settings or get_settings()
    snap = registry_snapshot(settings)
    stamp = snap.rollout_started
    out: dict[str, Any] = {
        "model": snap.name,
        "champion": snap.champion,
        "challenger": snap.challenger,
        "weight": snap.weight,
        "mode": snap.mode or settings.serving.mode,
        "rollout_started": stamp,
    }
    if stamp is not None:
        champ, chall = live_stats(snap.champion, snap.challenger, stamp, settings)
        out["live"] = canary_metrics(champ, chall)
    return out
