"""serving.cost: the process's CPU time is split among model versions at scrape time by their
share of request time, per 1,000 predictions; idle intervals count apart. The CPU clock is
injected (the real one is the process's CPU time, which a test cannot steer)."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from serving.cost import ServingCost
from serving.metrics import ServingMetrics


class Clock:
    def __init__(self) -> None:
        self.now = 10.0

    def __call__(self) -> float:
        return self.now


def _samples(text: str) -> dict[tuple[str, str], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, s.labels.get("model_version", ""))] = s.value
    return out


def test_cpu_is_split_by_request_time_and_counted_from_the_first_prediction() -> None:
    metrics = ServingMetrics()
    clock = Clock()
    cost = ServingCost(metrics.rows, metrics.latency, cpu_clock=clock)
    cost.update()  # nothing served yet: nothing counted
    assert cost.per_1k() == {}
    metrics.observe("1", "champion", rows=10, seconds=0.5, error=False)
    cost.start()  # after the first request: its rows and CPU are not counted
    metrics.observe("1", "champion", rows=100, seconds=0.3, error=False)
    metrics.observe("2", "challenger", rows=50, seconds=0.1, error=False)
    clock.now = 14.0  # 4 CPU seconds since the start
    cost.update()
    assert cost.cpu == pytest.approx({"1": 3.0, "2": 1.0})  # 0.3 : 0.1 of request time
    assert cost.predictions == {"1": 100.0, "2": 50.0}
    assert cost.per_1k() == pytest.approx({"1": 30.0, "2": 20.0})

    clock.now = 16.0  # nothing served in this interval
    cost.update()
    assert cost.idle_cpu == pytest.approx(2.0)
    assert cost.cpu == pytest.approx({"1": 3.0, "2": 1.0})


def test_metrics_endpoint_text_carries_the_cost_per_1000_predictions() -> None:
    metrics = ServingMetrics()
    assert "driftloop_serving_cpu_seconds_per_1k_predictions{" not in metrics.render().decode()
    for _ in range(3):
        metrics.observe("7", "champion", rows=500, seconds=0.01, error=False)
    samples = _samples(metrics.render().decode())
    assert samples[("driftloop_serving_cost_predictions_total", "7")] == 1000.0  # first left out
    cpu = samples[("driftloop_serving_cpu_seconds_total", "7")]
    ratio = samples[("driftloop_serving_cpu_seconds_per_1k_predictions", "7")]
    assert cpu >= 0
    assert ratio == pytest.approx(cpu / 1000 * 1000)
    assert ("driftloop_serving_idle_cpu_seconds_total", "") in samples
