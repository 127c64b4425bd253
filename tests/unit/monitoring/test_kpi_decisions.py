"""The monitor and the rollout decide against ``settings.kpi`` and record the KPI values they
used; stored records replay under the KPIs they stored."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from driftloop.loop.decisions import record_monitor, record_rollout, replay
from driftloop.monitoring.canary import CanaryEvidence, gather_evidence
from driftloop.monitoring.judge import JudgeInputs, judge
from driftloop.monitoring.noninferiority import ROLLBACK, decide
from driftloop.schema import LABEL, OUTPUT_PROBABILITY
from driftloop.settings import KpiSettings, MonitoringSettings, RolloutSettings, Settings

T0 = datetime(2026, 11, 30, 12, tzinfo=UTC)
ROLLOUT = RolloutSettings(min_requests=50, min_labeled_rows=100, guard_min_requests=20)
MONITOR = MonitoringSettings(min_rows=200, min_labeled_rows=100)


def _interval(estimate: float, half: float) -> dict[str, Any]:
    return {"estimate": estimate, "low": estimate - half, "high": estimate + half}


def test_the_monitor_judges_against_the_kpi_not_the_old_section_fields() -> None:
    inputs = JudgeInputs(rows=1000, labeled=500, observed_auc=_interval(0.70, 0.01))
    kpis = KpiSettings(min_auc=0.75)
    assert not judge(inputs, MONITOR).retrain  # the section's (default) 0.6 passes 0.70
    verdict = judge(inputs, MONITOR, kpis)
    assert verdict.retrain
    assert verdict.alarms == ["performance"]
    assert verdict.numbers["kpi"] == {
        "min_auc": 0.75,
        "max_auc_drop": kpis.max_auc_drop,
        "max_calibration_gap": kpis.max_calibration_gap,
    }
    gap = JudgeInputs(rows=1000, labeled=500, calibration_gap=_interval(0.06, 0.005))
    assert judge(gap, MONITOR).alarms == ["calibration"]  # default gap KPI 0.05
    assert not judge(gap, MONITOR, KpiSettings(max_calibration_gap=0.08)).retrain


def _log(requests: int, chall_latency_ms: float, chall_error: float = 0.0) -> pd.DataFrame:
    """Routed requests of one row each, alternating champion and challenger; the challenger's
    requests take ``chall_latency_ms`` and fail with probability ``chall_error``."""
    rng = np.random.default_rng(3)
    rows = []
    for i in range(requests):
        challenger = i % 2 == 1
        failed = challenger and rng.random() < chall_error
        p = float(rng.uniform(0.1, 0.4))
        rows.append(
            {
                "prediction_id": f"r{i:05d}:0",
                "request_id": f"r{i:05d}",
                "row": 0,
                "ts": T0 + timedelta(milliseconds=10 * i),
                "variant": "challenger" if challenger else "champion",
                "served": True,
                "routed": True,
                "routing_key": f"k{i}",
                "model_version": "2" if challenger else "1",
                "latency_ms": chall_latency_ms if challenger else 3.0,
                "model_ms": None if failed else 1.0,
                OUTPUT_PROBABILITY: None if failed else p,
                "error": "boom" if failed else None,
                LABEL: float(rng.random() < p),
            }
        )
    return pd.DataFrame(rows)


def _evidence(frame: pd.DataFrame, budget: float | None) -> CanaryEvidence:
    return gather_evidence(frame, "1", "2", "canary", 50, 0.5, latency_budget_ms=budget)


def test_a_challenger_over_the_p99_latency_budget_is_rolled_back_and_says_which_kpi() -> None:
    slow = _log(400, chall_latency_ms=300.0)
    ev = _evidence(slow, budget=200.0)
    assert ev.challenger.slow.mean == 1.0
    assert ev.champion.slow.mean == 0.0
    decision = decide(ev, ROLLOUT, False, KpiSettings(p99_latency_ms=200.0))
    assert decision.decision == ROLLBACK
    assert decision.guard is not None
    assert "p99 latency budget of 200 ms" in decision.guard
    assert decision.to_dict()["kpi"] == {"max_error_rate": 0.05, "p99_latency_ms": 200.0}
    within = decide(_evidence(slow, budget=500.0), ROLLOUT, False, KpiSettings())
    assert within.guard is None  # 300 ms is within a 500 ms budget
    # evidence gathered without a budget (records from before it) is not judged on it
    assert decide(_evidence(slow, None), ROLLOUT, False).guard is None


def test_the_error_rate_guard_reads_the_kpi_max_error_rate() -> None:
    failing = _evidence(_log(400, 3.0, chall_error=0.2), budget=1000.0)
    assert decide(failing, ROLLOUT, False, KpiSettings(max_error_rate=0.05)).guard
    lenient = decide(failing, ROLLOUT, False, KpiSettings(max_error_rate=0.5))
    assert lenient.guard is None
    assert lenient.kpi["max_error_rate"] == 0.5


def test_decision_records_store_their_kpis_and_replay_under_them(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path, kpi={"p99_latency_ms": 200.0, "min_auc": 0.75})
    ev = _evidence(_log(400, chall_latency_ms=300.0), budget=settings.kpi.p99_latency_ms)
    decision = decide(ev, settings.rollout, False, settings.kpi)
    stored = record_rollout(decision, 4, settings)
    assert stored["kpi"] == settings.kpi.model_dump(mode="json")
    assert stored["outputs"]["kpi"]["p99_latency_ms"] == 200.0
    again = replay(stored)
    assert again["same"]
    assert again["replayed"]["decision"] == ROLLBACK

    inputs = JudgeInputs(rows=1000, labeled=500, observed_auc=_interval(0.70, 0.01))
    verdict = judge(inputs, settings.monitoring, settings.kpi)
    window = {"start": "2026-11-30T00:00:00+00:00", "end": "2026-12-01T00:00:00+00:00"}
    monitor = record_monitor("m", "1", window, inputs, verdict, settings)
    assert monitor["kpi"]["min_auc"] == 0.75
    assert monitor["outputs"]["numbers"]["kpi"]["min_auc"] == 0.75
    assert replay(monitor)["same"]
    # a record from before the KPI section replays under the KPIs its section stored
    old = {k: v for k, v in monitor.items() if k != "kpi"}
    old["settings"] = {**old["settings"], "min_auc": 0.75}
    assert replay(old)["same"]
