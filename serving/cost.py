"""What serving costs per prediction, computed when ``/metrics`` is scraped (nothing per request):

* ``driftloop_serving_cpu_seconds_per_1k_predictions{model_version}``: CPU seconds of this
  process per 1,000 predicted rows of the version since its first prediction here;
* ``driftloop_serving_cpu_seconds_total{model_version}`` and
  ``driftloop_serving_cost_predictions_total{model_version}``: the two counters it is made of
  (sum them over replicas, or take ``rate``s, for a fleet-wide or windowed figure);
* ``driftloop_serving_idle_cpu_seconds_total``: CPU of scrape intervals without a prediction
  (the reconciler, feature refreshes, the capture writer when nothing is served).

How CPU is split between versions: at each scrape, the process's CPU time since the previous
scrape (every thread: HTTP, decoding, online features, the model, capture) is divided among the
versions by their share of in-server request time in that interval (the sums of
``driftloop_inference_latency_seconds``), so a slower model carries more of it. Counting starts
at the first prediction the replica serves (start-up and model loading are no prediction's
cost); rows of that first request are left out with it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

#: ``(rows, request seconds)`` per model version, as the inference metrics count them.
Totals = dict[str, tuple[float, float]]


def _totals(rows: Any, latency: Any) -> Totals:
    """Rows and request seconds per model version (summed over variants) from the inference
    metrics ``driftloop_inference_rows`` (counter) and ``..._latency_seconds`` (histogram)."""
    out: dict[str, list[float]] = {}
    for family in rows.collect():
        for sample in family.samples:
            if sample.name.endswith("_total"):
                out.setdefault(sample.labels["model_version"], [0.0, 0.0])[0] += sample.value
    for family in latency.collect():
        for sample in family.samples:
            if sample.name.endswith("_sum"):
                out.setdefault(sample.labels["model_version"], [0.0, 0.0])[1] += sample.value
    return {version: (r, s) for version, (r, s) in out.items()}


class ServingCost(Collector):
    """Attributes this process's CPU time to model versions at scrape time (see the module)."""

    def __init__(
        self, rows: Any, latency: Any, cpu_clock: Callable[[], float] = time.process_time
    ) -> None:
        self._rows, self._latency, self._clock = rows, latency, cpu_clock
        self._lock = threading.Lock()
        self.started = False
        self._last_cpu = 0.0
        self._last: Totals = {}
        self.cpu: dict[str, float] = {}
        self.predictions: dict[str, float] = {}
        self.idle_cpu = 0.0

    def start(self) -> None:
        """Begin counting now (called once, after the first prediction was counted)."""
        with self._lock:
            if not self.started:
                self._last_cpu, self._last = self._clock(), _totals(self._rows, self._latency)
                self.started = True

    def update(self) -> None:
        """Split the CPU time since the last update among the versions that served since."""
        with self._lock:
            if not self.started:
                return
            now_cpu, now = self._clock(), _totals(self._rows, self._latency)
            spent = max(0.0, now_cpu - self._last_cpu)
            deltas = {}
            for version, (rows, seconds) in now.items():
                last_rows, last_seconds = self._last.get(version, (0.0, 0.0))
                deltas[version] = (max(0.0, rows - last_rows), max(0.0, seconds - last_seconds))
            busy = sum(seconds for _, seconds in deltas.values())
            if busy > 0:
                for version, (rows, seconds) in deltas.items():
                    self.cpu[version] = self.cpu.get(version, 0.0) + spent * seconds / busy
                    self.predictions[version] = self.predictions.get(version, 0.0) + rows
            else:
                self.idle_cpu += spent
            self._last_cpu, self._last = now_cpu, now

    def per_1k(self) -> dict[str, float]:
        """CPU seconds per 1,000 predictions per version (versions with predictions only)."""
        return {
            version: self.cpu.get(version, 0.0) / rows * 1000.0
            for version, rows in self.predictions.items()
            if rows > 0
        }

    def collect(self) -> Iterator[Metric]:
        self.update()
        cpu = CounterMetricFamily(
            "driftloop_serving_cpu_seconds",
            "Process CPU seconds attributed to a model version (by its share of request time).",
            labels=["model_version"],
        )
        rows = CounterMetricFamily(
            "driftloop_serving_cost_predictions",
            "Predicted rows counted against driftloop_serving_cpu_seconds.",
            labels=["model_version"],
        )
        ratio = GaugeMetricFamily(
            "driftloop_serving_cpu_seconds_per_1k_predictions",
            "Serving CPU seconds per 1,000 predictions of a model version (this replica).",
            labels=["model_version"],
        )
        idle = CounterMetricFamily(
            "driftloop_serving_idle_cpu_seconds",
            "Process CPU seconds of scrape intervals in which nothing was predicted.",
        )
        with self._lock:
            for version in sorted(self.predictions):
                cpu.add_metric([version], self.cpu.get(version, 0.0))
                rows.add_metric([version], self.predictions[version])
            for version, value in sorted(self.per_1k().items()):
                ratio.add_metric([version], value)
            idle.add_metric([], self.idle_cpu)
        yield from (cpu, rows, ratio, idle)
