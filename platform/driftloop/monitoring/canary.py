"""The evidence of a canary, per variant, from the inference log (:mod:`driftloop.data.capture`),
so it covers every serving replica.

Only *routed* requests count: those whose variant the weight split chose. Requests pinned to a
version (``/versions/{v}/infer``) or carrying the caller's routing key are served but are no
evidence (a caller could pick who answers); neither are synthetic requests (load tests and probes
marked ``parameters.synthetic`` or ``X-Driftloop-Synthetic``), which count as ``excluded``.
The routed requests since the rollout started are ordered by arrival (time, then request id);
a look at ``n`` requests uses exactly the first ``n``, so the same traffic gives the same
evidence whenever the look happens.

Per variant the evidence is sufficient statistics (:class:`~driftloop.sequential.MeanStats`), not
rows, so a decision can be stored and recomputed from its record:

- ``error``: per request, 1 when any row failed (a challenger failure answered by the champion
  still counts against the challenger);
- ``latency``: per successful request, log of the model call's milliseconds *per row*
  (``model_ms`` / the request's rows, floored at ``latency_floor_ms``): differences of means are
  log ratios of geometric means. Per row, because the caller chooses the batch size: a routed
  caller sending huge batches to whichever variant answers them cannot make it look slow (the
  fixed cost of a call still favours larger batches a little);
- ``log_loss`` and ``residual`` (predicted probability - label): the mean over a request's
  labelled rows, one observation per request (rows of one request are not independent);
- ``slow``: per request, 1 when the whole request took longer than the latency budget
  (``settings.kpi.p99_latency_ms``, kept in the evidence as ``latency_budget_ms``): its mean is
  the share of requests over the p99 budget, which the rollout's latency guard judges.

In ``shadow`` mode both models scored the same rows, so log loss and calibration gap are also
compared *paired* (challenger - champion per row, averaged per request), which removes the rows'
own variance. ROC AUC is reported per variant with its DeLong interval; it is not a per-row
average, so it informs but does not decide.

Known limits: the caller still chooses the request id or flight that the split hashes
(routing is not salted per rollout), and a label arrives later for a late flight than for an
on-time one, so early looks see on-time rows first (``label_wait_s`` should cover the label
delay).
:mod:`driftloop.loop.rollout` decides on this evidence; the admin API and the CLI show it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from driftloop.data.capture import CaptureCursor, read_predictions
from driftloop.monitoring.performance import observed_roc_auc
from driftloop.schema import LABEL, OUTPUT_PROBABILITY
from driftloop.sequential import MeanStats
from driftloop.settings import Settings

#: Probabilities are clipped to [EPS, 1 - EPS] before the log loss.
EPS = 1e-7


@dataclass(frozen=True)
class ArmEvidence:
    """One variant's evidence: sufficient statistics plus numbers shown to people."""

    version: str | None
    requests: int = 0
    rows: int = 0
    labeled: int = 0
    error: MeanStats = field(default_factory=lambda: MeanStats(binary=True))
    latency: MeanStats = field(default_factory=MeanStats)
    log_loss: MeanStats = field(default_factory=MeanStats)
    residual: MeanStats = field(default_factory=MeanStats)
    #: per request: 1 when it took longer than the latency budget (empty without a budget)
    slow: MeanStats = field(default_factory=lambda: MeanStats(binary=True))
    p95_model_ms: float | None = None
    p95_request_ms: float | None = None
    mean_probability: float | None = None
    roc_auc: dict[str, Any] | None = None

    @property
    def errors(self) -> int:
        return round(self.error.total)

    @property
    def error_rate(self) -> float:
        return self.error.mean if self.error.n else 0.0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("error", "latency", "log_loss", "residual", "slow"):
            out[key] = getattr(self, key).to_dict()
        out["errors"] = self.errors
        out["error_rate"] = self.error_rate
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ArmEvidence:
        def opt(key: str) -> float | None:
            value = data.get(key)
            return None if value is None else float(value)

        return cls(
            version=data.get("version"),
            requests=int(data.get("requests", 0)),
            rows=int(data.get("rows", 0)),
            labeled=int(data.get("labeled", 0)),
            error=MeanStats.from_dict(data["error"]),
            latency=MeanStats.from_dict(data["latency"]),
            log_loss=MeanStats.from_dict(data["log_loss"]),
            residual=MeanStats.from_dict(data["residual"]),
            # evidence stored before the latency budget: nothing was counted
            slow=MeanStats.from_dict(data["slow"]) if data.get("slow") else MeanStats(binary=True),
            p95_model_ms=opt("p95_model_ms"),
            p95_request_ms=opt("p95_request_ms"),
            mean_probability=opt("mean_probability"),
            roc_auc=data.get("roc_auc"),
        )


@dataclass(frozen=True)
class CanaryEvidence:
    """Both variants' evidence over the first ``routed`` routed requests of a rollout."""

    mode: str
    weight: int
    champion: ArmEvidence
    challenger: ArmEvidence
    #: routed requests in the evidence, and those of them the challenger got (canary) or
    #: scored a copy of (shadow): the sample-ratio check compares their share with the weight
    routed: int = 0
    treated: int = 0
    #: distinct routing keys among them, and among the treated: the split is by key (sticky
    #: routing), so the sample-ratio check counts keys, the unit that is randomised
    keys: int = 0
    treated_keys: int = 0
    #: shadow mode: per labelled row, challenger - champion log loss
    paired_log_loss: MeanStats | None = None
    #: shadow mode: per labelled row, challenger - champion probability (moves the gap)
    paired_shift: MeanStats | None = None
    #: routed requests seen so far (the evidence may use fewer), and requests left out
    available: int = 0
    excluded: int = 0
    first_ts: str | None = None
    last_ts: str | None = None
    #: the latency budget (ms, whole request) the arms' ``slow`` counts are against (None: none)
    latency_budget_ms: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "weight": self.weight,
            "champion": self.champion.to_dict(),
            "challenger": self.challenger.to_dict(),
            "routed": self.routed,
            "treated": self.treated,
            "keys": self.keys,
            "treated_keys": self.treated_keys,
            "paired_log_loss": (
                self.paired_log_loss.to_dict() if self.paired_log_loss is not None else None
            ),
            "paired_shift": (
                self.paired_shift.to_dict() if self.paired_shift is not None else None
            ),
            "available": self.available,
            "excluded": self.excluded,
            "first_ts": self.first_ts,
            "last_ts": self.last_ts,
            "latency_budget_ms": self.latency_budget_ms,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CanaryEvidence:
        paired = data.get("paired_log_loss")
        shift = data.get("paired_shift")
        return cls(
            mode=str(data["mode"]),
            weight=int(data["weight"]),
            champion=ArmEvidence.from_dict(data["champion"]),
            challenger=ArmEvidence.from_dict(data["challenger"]),
            routed=int(data["routed"]),
            treated=int(data["treated"]),
            keys=int(data.get("keys", 0)),
            treated_keys=int(data.get("treated_keys", 0)),
            paired_log_loss=MeanStats.from_dict(paired) if paired else None,
            paired_shift=MeanStats.from_dict(shift) if shift else None,
            available=int(data.get("available", 0)),
            excluded=int(data.get("excluded", 0)),
            first_ts=data.get("first_ts"),
            last_ts=data.get("last_ts"),
            latency_budget_ms=(
                float(data["latency_budget_ms"])
                if data.get("latency_budget_ms") is not None
                else None
            ),
        )


def _row_log_loss(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    p = np.clip(p, EPS, 1.0 - EPS)
    loss: np.ndarray = -(y * np.log(p) + (1.0 - y) * np.log1p(-p))
    return loss


def _per_request(request_ids: Any, *values: np.ndarray) -> list[MeanStats]:
    """One observation per request: the mean of its rows' ``values``. Rows of one request share
    its moment and caller, so they are not independent; requests are (the split assigns whole
    requests), which keeps the intervals honest."""
    if len(request_ids) == 0:
        return [MeanStats() for _ in values]
    frame = pd.DataFrame({f"v{i}": v for i, v in enumerate(values)})
    means = frame.groupby(np.asarray(request_ids), sort=False).mean()
    return [MeanStats.of(means[f"v{i}"].to_numpy()) for i in range(len(values))]


def _p95(values: pd.Series) -> float | None:
    values = values.dropna()
    return float(np.percentile(values, 95)) if not values.empty else None


def arm_evidence(
    rows: pd.DataFrame,
    version: str | None,
    latency_floor_ms: float,
    latency_budget_ms: float | None = None,
) -> ArmEvidence:
    """Evidence of one variant from its captured rows (labels in ``is_late`` where known);
    ``slow`` counts the requests over ``latency_budget_ms`` (none counted without one)."""
    if rows.empty:
        return ArmEvidence(version)
    failed = rows["error"].notna()
    model_ms = rows["model_ms"] if "model_ms" in rows.columns else rows["latency_ms"]
    per_request = (
        rows.assign(model=model_ms.fillna(rows["latency_ms"]), failed=failed)
        .groupby("request_id", sort=False)
        .agg(
            latency=("latency_ms", "max"),
            model=("model", "max"),
            failed=("failed", "any"),
            size=("failed", "size"),
        )
    )
    fine = per_request.loc[~per_request["failed"]].dropna(subset=["model"])
    per_row_ms = fine["model"].to_numpy(dtype=float) / fine["size"].to_numpy(dtype=float)
    ok = rows[~failed & rows[OUTPUT_PROBABILITY].notna()]
    labeled = ok[ok[LABEL].notna()] if LABEL in ok.columns else ok.iloc[0:0]
    y = labeled[LABEL].to_numpy(dtype=np.float64)
    p = labeled[OUTPUT_PROBABILITY].to_numpy(dtype=np.float64)
    log_loss, residual = _per_request(labeled["request_id"], _row_log_loss(y, p), p - y)
    request_ms = per_request["latency"].to_numpy(dtype=float)
    slow = (
        MeanStats.of(
            np.where(np.isnan(request_ms), np.nan, request_ms > latency_budget_ms), binary=True
        )
        if latency_budget_ms is not None
        else MeanStats(binary=True)
    )
    return ArmEvidence(
        version=version,
        requests=len(per_request),
        rows=len(rows),
        labeled=len(labeled),
        error=MeanStats.of(per_request["failed"].to_numpy(dtype=float), binary=True),
        latency=MeanStats.of(np.log(np.maximum(per_row_ms, max(latency_floor_ms, 1e-6)))),
        log_loss=log_loss,
        residual=residual,
        slow=slow,
        p95_model_ms=_p95(per_request.loc[~per_request["failed"], "model"]),
        p95_request_ms=_p95(per_request["latency"]),
        mean_probability=float(ok[OUTPUT_PROBABILITY].mean()) if not ok.empty else None,
        roc_auc=_auc(y, p),
    )


def _auc(y: np.ndarray, p: np.ndarray) -> dict[str, Any] | None:
    interval = observed_roc_auc(y, p) if len(y) else None
    return interval.to_dict() if interval is not None else None


def _routed(frame: pd.DataFrame) -> pd.Series:
    if "routed" not in frame.columns:  # files from before the column: all were routed
        return pd.Series(True, index=frame.index)
    return frame["routed"].map(lambda v: True if v is None or v is pd.NA else bool(v)).astype(bool)


def _synthetic(frame: pd.DataFrame) -> pd.Series:
    """Rows marked synthetic: never evidence, however the frame was read."""
    if "synthetic" not in frame.columns:  # files from before the column: real traffic
        return pd.Series(False, index=frame.index)
    return frame["synthetic"].notna()


def _arrivals(
    frame: pd.DataFrame,
    champion: str | None,
    challenger: str | None,
    until: datetime | pd.Timestamp | None,
) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """(rows of routed evidence, its requests in arrival order, requests left out).

    Left out: rows of other versions; requests pinned to a version or with the caller's routing
    key; synthetic requests (load tests, probes); request ids used twice (their rows cannot be
    told apart). The evidence starts at the
    challenger's first routed request: until serving has read the new weight from the registry,
    every request goes to the champion, which is no sample of the split."""
    version = frame["model_version"].astype(str)
    ours = frame[version.isin([str(champion), str(challenger)])]
    routed = _routed(ours)
    reused = ours.duplicated(["variant", "prediction_id"], keep=False)
    bad_ids = set(ours.loc[reused, "request_id"])
    keep = routed & ~_synthetic(ours) & ~ours["request_id"].isin(bad_ids)
    excluded = int(ours.loc[~keep, "request_id"].nunique())
    ours = ours[keep]
    arrivals = ours.groupby("request_id", sort=False)["ts"].min().reset_index()
    first = ours.loc[
        (ours["variant"] == "challenger") & (ours["model_version"].astype(str) == str(challenger)),
        "ts",
    ].min()
    arrivals = arrivals.iloc[0:0] if pd.isna(first) else arrivals[arrivals["ts"] >= first]
    arrivals = arrivals.sort_values(["ts", "request_id"], kind="stable")
    if until is not None:
        arrivals = arrivals[arrivals["ts"] <= pd.Timestamp(until)]
    return ours, arrivals, excluded


def available_requests(
    frame: pd.DataFrame,
    champion: str | None,
    challenger: str | None,
    until: datetime | pd.Timestamp | None = None,
) -> int:
    """Routed requests of the evidence so far (what a look could use)."""
    if frame.empty:
        return 0
    return len(_arrivals(frame, champion, challenger, until)[1])


def gather_evidence(
    frame: pd.DataFrame,
    champion: str | None,
    challenger: str | None,
    mode: str,
    weight: int,
    latency_floor_ms: float,
    limit: int | None = None,
    until: datetime | pd.Timestamp | None = None,
    latency_budget_ms: float | None = None,
) -> CanaryEvidence:
    """The evidence in ``frame`` (capture rows since the rollout started, labels joined): the
    first ``limit`` routed requests (all when None) that arrived no later than ``until``;
    requests over ``latency_budget_ms`` are counted per arm (``slow``)."""
    budget = latency_budget_ms
    empty = CanaryEvidence(
        mode, weight, ArmEvidence(champion), ArmEvidence(challenger), latency_budget_ms=budget
    )
    if frame.empty:
        return empty
    ours, arrivals, excluded = _arrivals(frame, champion, challenger, until)
    available = len(arrivals)
    chosen = arrivals if limit is None else arrivals.head(limit)
    if chosen.empty:
        return CanaryEvidence(
            mode,
            weight,
            ArmEvidence(champion),
            ArmEvidence(challenger),
            available=available,
            excluded=excluded,
            latency_budget_ms=budget,
        )
    rows = ours[ours["request_id"].isin(set(chosen["request_id"]))]
    is_chall = (rows["variant"] == "challenger") & (
        rows["model_version"].astype(str) == str(challenger)
    )
    is_champ = (
        (rows["variant"] == "champion")
        & (rows["model_version"].astype(str) == str(champion))
        & rows["served"].astype(bool)
    )
    treated_ids = set(rows.loc[is_chall, "request_id"])
    chall_rows = rows[is_chall]
    if mode == "shadow":  # both scored the mirrored requests: compare on those
        champ_rows = rows[is_champ & rows["request_id"].isin(treated_ids)]
    else:  # a challenger failure answered by the champion is the challenger's request
        champ_rows = rows[is_champ & ~rows["request_id"].isin(treated_ids)]
    paired = _paired(champ_rows, chall_rows) if mode == "shadow" else None
    keys = rows.drop_duplicates("request_id")
    treated_keys = keys.loc[keys["request_id"].isin(treated_ids), "routing_key"]
    return CanaryEvidence(
        mode=mode,
        weight=weight,
        champion=arm_evidence(champ_rows, champion, latency_floor_ms, budget),
        challenger=arm_evidence(chall_rows, challenger, latency_floor_ms, budget),
        routed=len(chosen),
        treated=len(treated_ids),
        keys=int(keys["routing_key"].nunique()),
        treated_keys=int(treated_keys.nunique()),
        paired_log_loss=paired[0] if paired else None,
        paired_shift=paired[1] if paired else None,
        available=available,
        excluded=excluded,
        first_ts=pd.Timestamp(chosen["ts"].iloc[0]).isoformat(),
        last_ts=pd.Timestamp(chosen["ts"].iloc[-1]).isoformat(),
        latency_budget_ms=budget,
    )


def _paired(champ: pd.DataFrame, chall: pd.DataFrame) -> tuple[MeanStats, MeanStats]:
    """Per labelled row scored by both: challenger - champion log loss, and challenger -
    champion probability."""
    cols = ["prediction_id", "request_id", OUTPUT_PROBABILITY, LABEL]
    ok = [
        df.loc[df["error"].isna() & df[OUTPUT_PROBABILITY].notna() & df[LABEL].notna(), cols]
        for df in (champ, chall)
    ]
    both = ok[0].merge(ok[1].drop(columns="request_id"), on="prediction_id", suffixes=("_a", "_b"))
    y = both[f"{LABEL}_a"].to_numpy(dtype=np.float64)
    p_a = both[f"{OUTPUT_PROBABILITY}_a"].to_numpy(dtype=np.float64)
    p_b = both[f"{OUTPUT_PROBABILITY}_b"].to_numpy(dtype=np.float64)
    loss, shift = _per_request(
        both["request_id"], _row_log_loss(y, p_b) - _row_log_loss(y, p_a), p_b - p_a
    )
    return loss, shift


def read_rollout_frame(
    settings: Settings, since: datetime | str | None, cursor: CaptureCursor | None = None
) -> pd.DataFrame:
    """Capture rows since the rollout started, with the labels that arrived. A poller passes
    the same ``cursor`` every time: only the capture files that appeared since its last poll
    are read (same frame as a full read)."""
    return read_predictions(settings, start=since, cursor=cursor)
