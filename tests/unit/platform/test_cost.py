"""driftloop.cost: metering CPU (this process and the children it waited for), prices, and the
gate's serving-cost rule with the numbers it decides on."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

from driftloop.cost import Meter, judge_serving_cost, money, per_1k
from driftloop.settings import CostSettings
from driftloop.stats import PairedAucGain

RULE = CostSettings(gate_max_serving_cost_increase=0.25, gate_min_auc_gain=0.005)
COSTLY = [1.5, 1.45, 1.55, 1.48, 1.52, 1.5, 1.47, 1.53, 1.51]  # 9 paired passes, ~+50 %


def _gain(estimate: float, lower: float) -> PairedAucGain:
    return PairedAucGain(estimate, lower, (estimate - lower) / 1.645, 5000, 0.95)


def test_a_costlier_challenger_without_a_shown_quality_gain_is_refused_with_the_numbers() -> None:
    verdict = judge_serving_cost(1.5, 1.0, COSTLY, _gain(0.006, -0.002), RULE)
    assert not verdict.allowed
    assert verdict.increase == pytest.approx(0.5)
    assert verdict.increase_lower == pytest.approx(0.47)  # 2nd smallest of 9 (sign test)
    assert verdict.cost_alpha == pytest.approx(10 / 512)
    assert (verdict.passes, verdict.alpha) == (9, 0.05)
    assert (verdict.challenger_cpu_s_per_1k, verdict.champion_cpu_s_per_1k) == (1.5, 1.0)
    assert (verdict.auc_gain, verdict.auc_gain_lower) == (0.006, -0.002)
    assert (verdict.max_increase, verdict.min_auc_gain) == (0.25, 0.005)
    assert "+50%" in verdict.reason
    assert "lower bound +47%" in verdict.reason
    assert "without a shown quality gain" in verdict.reason
    # the point gain 0.006 is above 0.005, but its lower bound is not: not shown
    assert "+0.0060, 95% lower bound -0.0020 < 0.005" in verdict.reason


def test_a_costlier_challenger_with_a_shown_quality_gain_is_accepted() -> None:
    verdict = judge_serving_cost(1.5, 1.0, COSTLY, _gain(0.02, 0.011), RULE)
    assert verdict.allowed
    assert "paid for by ROC AUC gain +0.0200" in verdict.reason
    assert "lower bound +0.0110 >= 0.005" in verdict.reason


def test_a_cost_not_shown_above_the_limit_passes_without_gain() -> None:
    assert judge_serving_cost(1.25, 1.0, [1.25] * 9, None, RULE).allowed
    assert judge_serving_cost(0.5, 1.0, [0.5] * 9, _gain(-0.01, -0.02), RULE).allowed
    # a median of +40 % whose passes are too noisy to show it is above +25 %: not refused
    noisy = [1.1, 1.2, 1.4, 1.4, 1.4, 1.5, 1.6, 1.7, 1.8]
    verdict = judge_serving_cost(1.4, 1.0, noisy, None, RULE)
    assert verdict.allowed
    assert verdict.increase == pytest.approx(0.4)
    assert "not shown above +25%" in verdict.reason
    assert not judge_serving_cost(1.3, 1.0, [1.3] * 9, None, RULE).allowed  # gain unknown


@pytest.mark.parametrize("ratios", [None, [], [1.5, math.nan] * 5, [1.5, 0.0] * 5])
def test_an_unmeasured_cost_refuses_nothing_and_says_so(ratios: list[float] | None) -> None:
    verdict = judge_serving_cost(None, 1.0, ratios, None, RULE)
    assert verdict.allowed
    assert "not judged" in verdict.reason


def test_too_few_passes_for_the_test_refuse_nothing_and_say_so() -> None:
    verdict = judge_serving_cost(3.0, 1.0, [3.0] * 4, None, RULE)
    assert verdict.allowed
    assert "4 paired passes cannot bound" in verdict.reason


def test_the_rule_can_be_switched_off() -> None:
    off = RULE.model_copy(update={"gate_enabled": False})
    verdict = judge_serving_cost(10.0, 1.0, [10.0] * 9, None, off)
    assert verdict.allowed
    assert "off" in verdict.reason


def test_fewer_than_five_repeats_is_a_settings_error() -> None:
    with pytest.raises(ValueError, match="gate_repeats"):
        CostSettings(gate_repeats=3)


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
