"""What the platform's work costs: resource use measured around an activity, prices from
``settings.cost`` that turn it into money, and the evaluation gate's rule on serving cost.

* :class:`Meter` measures one activity in this process: CPU seconds (every thread of the
  process, plus the children it waited for: git, subprocess tools), wall seconds, and GPU
  seconds (the wall time on CUDA devices, per device) when the activity ran on one.
* :func:`money` prices CPU and GPU seconds (``cost.cpu_hour``, ``cost.gpu_hour``).
* :func:`judge_serving_cost` is the gate's rule: a challenger shown (sign test over paired
  scoring passes) to need more than ``cost.gate_max_serving_cost_increase`` more CPU seconds
  per 1,000 predictions than the champion must pay for it with a ROC AUC gain whose
  paired-DeLong lower bound reaches ``cost.gate_min_auc_gain``; both tests at
  ``cost.gate_alpha``.

Nothing here knows MLflow, torch or Prometheus: the training, serving and loop layers measure
with it and log where they log.
"""

from __future__ import annotations

import math
import resource
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from driftloop.settings import CostSettings
from driftloop.stats import MedianBound, PairedAucGain, median_lower_bound

#: Metric names (MLflow) of a training run's cost.
CPU_SECONDS = "cost.cpu_seconds"
GPU_SECONDS = "cost.gpu_seconds"
FIT_CPU_SECONDS = "cost.fit_cpu_seconds"
FIT_WALL_SECONDS = "cost.fit_wall_seconds"
EVALUATE_CPU_SECONDS = "cost.evaluate_cpu_seconds"
PREDICT_CPU_PER_1K = "cost.predict_cpu_s_per_1k"
CHAMPION_PREDICT_CPU_PER_1K = "cost.champion_predict_cpu_s_per_1k"
LOOP_CPU_SECONDS = "cost.loop_cpu_seconds"
LOOP_WALL_SECONDS = "cost.loop_wall_seconds"


def process_cpu_seconds() -> float:
    """CPU time (user + system) of every thread of this process so far."""
    return time.process_time()


def children_cpu_seconds() -> float:
    """CPU time of the child processes this process has waited for."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass(frozen=True)
class Usage:
    """Resources one activity used."""

    cpu_seconds: float
    wall_seconds: float
    gpu_seconds: float = 0.0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.cpu_seconds + other.cpu_seconds,
            self.wall_seconds + other.wall_seconds,
            self.gpu_seconds + other.gpu_seconds,
        )

    def to_dict(self) -> dict[str, float]:
        return {k: round(v, 6) for k, v in asdict(self).items()}


class Meter:
    """Measure the activity between :meth:`start` (or ``with``) and :meth:`stop`::

        with Meter() as meter:
            work()
        meter.usage.cpu_seconds

    ``gpus``: CUDA devices the activity holds (its GPU seconds are wall seconds x gpus).
    """

    def __init__(self, gpus: int = 0) -> None:
        self.gpus = gpus
        self._cpu = self._children = self._wall = 0.0
        self.usage: Usage | None = None

    def start(self) -> Meter:
        self._cpu, self._children = process_cpu_seconds(), children_cpu_seconds()
        self._wall = time.perf_counter()
        self.usage = None
        return self

    def read(self) -> Usage:
        """The usage so far (the meter keeps running)."""
        cpu = process_cpu_seconds() - self._cpu + children_cpu_seconds() - self._children
        wall = time.perf_counter() - self._wall
        return Usage(cpu_seconds=cpu, wall_seconds=wall, gpu_seconds=wall * self.gpus)

    def stop(self) -> Usage:
        self.usage = self.read()
        return self.usage

    def __enter__(self) -> Meter:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def money(cpu_seconds: float, gpu_seconds: float, prices: CostSettings) -> float:
    """What ``cpu_seconds`` and ``gpu_seconds`` cost at the configured hourly prices."""
    return cpu_seconds / 3600.0 * prices.cpu_hour + gpu_seconds / 3600.0 * prices.gpu_hour


def per_1k(cpu_seconds: float, predictions: float) -> float | None:
    """CPU seconds per 1,000 predictions (None without predictions)."""
    return cpu_seconds / predictions * 1000.0 if predictions > 0 else None


@dataclass(frozen=True)
class ServingCostVerdict:
    """The gate's serving-cost rule applied to one challenger, with the numbers it used.

    ``increase`` is the median of the paired passes' cost ratios minus one and
    ``increase_lower`` its one-sided lower bound (sign test, achieved error rate
    ``cost_alpha``); ``auc_gain`` and ``auc_gain_lower`` the paired-DeLong ROC AUC gain over
    the champion on the same rows and its lower bound at ``1 - alpha``."""

    allowed: bool
    reason: str
    challenger_cpu_s_per_1k: float | None
    champion_cpu_s_per_1k: float | None
    increase: float | None
    auc_gain: float | None
    max_increase: float
    min_auc_gain: float
    alpha: float = 0.05
    increase_lower: float | None = None
    passes: int = 0
    cost_alpha: float | None = None
    auc_gain_lower: float | None = None
    auc_rows: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def judge_serving_cost(
    challenger_cpu_s_per_1k: float | None,
    champion_cpu_s_per_1k: float | None,
    ratios: Sequence[float] | None,
    auc_gain: PairedAucGain | None,
    settings: CostSettings,
) -> ServingCostVerdict:
    """Refuse a challenger that is *shown* to cost more than ``gate_max_serving_cost_increase``
    (a share) above the champion per prediction, unless it is *shown* to gain at least
    ``gate_min_auc_gain`` ROC AUC over the champion on the same rows.

    Both are one-sided tests at ``gate_alpha``, so the rule states its error rates:

    * cost: ``ratios`` are the challenger/champion CPU-time ratios of paired, alternating
      scoring passes. The challenger counts as costlier only when the sign-test lower bound of
      their median exceeds ``1 + max_increase``: a challenger whose true median ratio is within
      the limit is refused for cost with probability at most ``alpha`` (exact for independent
      passes; no assumption on the noise's shape).
    * quality: a costlier challenger is paid for only when the paired-DeLong lower bound of its
      AUC gain reaches ``gate_min_auc_gain``: one whose true gain is below it is let through
      with probability at most ``alpha`` (asymptotically normal).

    ``challenger_cpu_s_per_1k``/``champion_cpu_s_per_1k`` (each model's fastest pass) are
    recorded for the reader. A cost that could not be measured refuses nothing (the reason
    says so): cost is a price, not a safety property."""
    limit, need, alpha = (
        settings.gate_max_serving_cost_increase,
        settings.gate_min_auc_gain,
        settings.gate_alpha,
    )
    gain = auc_gain.estimate if auc_gain is not None and _finite(auc_gain.estimate) else None
    gain_lower = auc_gain.lower if gain is not None and auc_gain is not None else None

    def verdict(allowed: bool, reason: str, bound: MedianBound | None = None) -> ServingCostVerdict:
        return ServingCostVerdict(
            allowed,
            reason,
            challenger_cpu_s_per_1k,
            champion_cpu_s_per_1k,
            bound.median - 1.0 if bound is not None else None,
            gain,
            limit,
            need,
            alpha,
            bound.lower - 1.0 if bound is not None else None,
            len(ratios or ()),
            bound.achieved_alpha if bound is not None else None,
            gain_lower,
            auc_gain.rows if auc_gain is not None else None,
        )

    if not settings.gate_enabled:
        return verdict(True, "serving-cost rule off (cost.gate_enabled=false)")
    if not ratios or not all(_finite(r) and r > 0 for r in ratios):
        return verdict(True, "serving cost not measured for both models: not judged")
    bound = median_lower_bound(ratios, alpha)
    if bound is None:
        return verdict(
            True,
            f"{len(ratios)} paired passes cannot bound the cost ratio at alpha {alpha:g}: "
            "not judged",
        )
    increase, lower = bound.median - 1.0, bound.lower - 1.0
    costs = (
        f"{increase:+.0%} CPU s per 1,000 predictions vs the champion (median of {bound.n} "
        f"paired passes; {1 - bound.achieved_alpha:.1%} lower bound {lower:+.0%}"
    )
    if lower <= limit:
        return verdict(True, f"serving cost {costs}) not shown above +{limit:.0%}", bound)
    if gain is not None and gain_lower is not None and gain_lower >= need:
        return verdict(
            True,
            f"serving cost {costs}) above +{limit:.0%}, paid for by ROC AUC gain {gain:+.4f} "
            f"(paired DeLong {1 - alpha:.0%} lower bound {gain_lower:+.4f} >= {need:g})",
            bound,
        )
    gained = (
        f"{gain:+.4f}, {1 - alpha:.0%} lower bound {gain_lower:+.4f}"
        if gain is not None and gain_lower is not None
        else "unknown"
    )
    return verdict(
        False,
        f"serving cost {costs}) is above the allowed +{limit:.0%} without a shown quality "
        f"gain (ROC AUC gain {gained} < {need:g})",
        bound,
    )
