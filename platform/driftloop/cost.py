"""What the platform's work costs: resource use measured around an activity, prices from
``settings.cost`` that turn it into money, and the evaluation gate's rule on serving cost.

* :class:`Meter` measures one activity in this process: CPU seconds (every thread of the
  process, plus the children it waited for: git, subprocess tools), wall seconds, and GPU
  seconds (the wall time on CUDA devices, per device) when the activity ran on one.
* :func:`money` prices CPU and GPU seconds (``cost.cpu_hour``, ``cost.gpu_hour``).
* :func:`judge_serving_cost` is the gate's rule: a challenger that needs more than
  ``cost.gate_max_serving_cost_increase`` more CPU seconds per 1,000 predictions than the
  champion must pay for it with a ROC AUC gain of at least ``cost.gate_min_auc_gain``.

Nothing here knows MLflow, torch or Prometheus: the training, serving and loop layers measure
with it and log where they log.
"""

from __future__ import annotations

import math
import resource
import time
from dataclasses import asdict, dataclass
from typing import Any

from driftloop.settings import CostSettings

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
    """The gate's serving-cost rule applied to one challenger, with the numbers it used."""

    allowed: bool
    reason: str
    challenger_cpu_s_per_1k: float | None
    champion_cpu_s_per_1k: float | None
    increase: float | None
    auc_gain: float | None
    max_increase: float
    min_auc_gain: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def judge_serving_cost(
    challenger_cpu_s_per_1k: float | None,
    champion_cpu_s_per_1k: float | None,
    auc_gain: float | None,
    settings: CostSettings,
) -> ServingCostVerdict:
    """Refuse a challenger whose CPU seconds per 1,000 predictions exceed the champion's by
    more than ``gate_max_serving_cost_increase`` (a share) unless its ROC AUC gain over the
    champion on the same holdout is at least ``gate_min_auc_gain``. A cost that could not be
    measured refuses nothing (the reason says so): cost is a price, not a safety property."""
    limit, need = settings.gate_max_serving_cost_increase, settings.gate_min_auc_gain

    def verdict(allowed: bool, reason: str, increase: float | None = None) -> ServingCostVerdict:
        return ServingCostVerdict(
            allowed,
            reason,
            challenger_cpu_s_per_1k,
            champion_cpu_s_per_1k,
            increase,
            auc_gain,
            limit,
            need,
        )

    if not settings.gate_enabled:
        return verdict(True, "serving-cost rule off (cost.gate_enabled=false)")
    if not (_finite(challenger_cpu_s_per_1k) and _finite(champion_cpu_s_per_1k)):
        return verdict(True, "serving cost not measured for both models: not judged")
    assert challenger_cpu_s_per_1k is not None
    assert champion_cpu_s_per_1k is not None
    if champion_cpu_s_per_1k <= 0:
        return verdict(True, "champion's serving cost measured as 0: not judged")
    increase = challenger_cpu_s_per_1k / champion_cpu_s_per_1k - 1.0
    costs = (
        f"{challenger_cpu_s_per_1k:.4g} vs champion {champion_cpu_s_per_1k:.4g} CPU s per 1,000 "
        f"predictions ({increase:+.0%})"
    )
    if increase <= limit:
        return verdict(True, f"serving cost {costs} within +{limit:.0%}", increase)
    gain = auc_gain if _finite(auc_gain) else None
    if gain is not None and gain >= need:
        return verdict(
            True,
            f"serving cost {costs} above +{limit:.0%}, paid for by ROC AUC gain {gain:+.4f} "
            f">= {need:g}",
            increase,
        )
    gained = f"{gain:+.4f}" if gain is not None else "unknown"
    return verdict(
        False,
        f"serving cost {costs} is above the allowed +{limit:.0%} without a quality gain "
        f"(ROC AUC gain {gained} < {need:g})",
        increase,
    )
