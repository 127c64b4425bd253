"""driftloop.cost: metering CPU (this process and the children it waited for), prices, and the
gate's serving-cost rule with the numbers it decides on."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

from driftloop.cost import Meter, judge_serving_cost, money, per_1k
from driftloop.settings import CostSettings

RULE = CostSettings(gate_max_serving_cost_increase=0.25, gate_min_auc_gain=0.005)


def test_a_costlier_challenger_without_quality_gain_is_refused_with_the_numbers() -> None:
    verdict = judge_serving_cost(1.5, 1.0, 0.001, RULE)
    assert not verdict.allowed
    assert verdict.increase == pytest.approx(0.5)
    assert (verdict.challenger_cpu_s_per_1k, verdict.champion_cpu_s_per_1k) == (1.5, 1.0)
    assert (verdict.max_increase, verdict.min_auc_gain) == (0.25, 0.005)
    assert "+50%" in verdict.reason
    assert "without a quality gain" in verdict.reason
    assert "+0.0010 < 0.005" in verdict.reason


def test_a_costlier_challenger_with_a_quality_gain_is_accepted() -> None:
    verdict = judge_serving_cost(1.5, 1.0, 0.02, RULE)
    assert verdict.allowed
    assert "paid for by ROC AUC gain +0.0200" in verdict.reason


def test_a_challenger_within_the_allowed_increase_passes_without_gain() -> None:
    assert judge_serving_cost(1.25, 1.0, 0.0, RULE).allowed
    assert judge_serving_cost(0.5, 1.0, -0.01, RULE).allowed  # cheaper: never refused for cost
    assert not judge_serving_cost(1.26, 1.0, None, RULE).allowed  # gain unknown: no gain


@pytest.mark.parametrize(
    ("challenger", "champion"), [(None, 1.0), (1.0, None), (math.nan, 1.0), (2.0, 0.0)]
)
def test_an_unmeasured_cost_refuses_nothing_and_says_so(
    challenger: float | None, champion: float | None
) -> None:
    verdict = judge_serving_cost(challenger, champion, 0.0, RULE)
    assert verdict.allowed
    assert "not judged" in verdict.reason


def test_the_rule_can_be_switched_off() -> None:
    off = RULE.model_copy(update={"gate_enabled": False})
    verdict = judge_serving_cost(10.0, 1.0, 0.0, off)
    assert verdict.allowed
    assert "off" in verdict.reason


def test_money_uses_the_hourly_prices() -> None:
    prices = CostSettings(cpu_hour=0.05, gpu_hour=2.5, currency="EUR")
    assert money(3600, 0, prices) == pytest.approx(0.05)
    assert money(0, 1800, prices) == pytest.approx(1.25)
    assert money(7200, 360, prices) == pytest.approx(0.1 + 0.25)
    assert per_1k(3.0, 1500) == pytest.approx(2.0)
    assert per_1k(3.0, 0) is None


def test_meter_counts_this_process_and_the_children_it_waited_for() -> None:
    burn = (
        "import time\nt = time.process_time()\n"
        "while time.process_time() - t < 0.3:\n    sum(range(1000))\n"
    )
    with Meter() as meter:
        subprocess.run([sys.executable, "-c", burn], check=True)
    assert meter.usage is not None
    assert meter.usage.cpu_seconds >= 0.3  # the child's CPU, measured in CPU time
    assert meter.usage.gpu_seconds == 0.0
    assert meter.usage.wall_seconds > 0

    gpu = Meter(gpus=2).start()
    usage = gpu.stop()
    assert usage.gpu_seconds == pytest.approx(2 * usage.wall_seconds)
