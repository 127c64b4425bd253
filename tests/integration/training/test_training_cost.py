"""Cost of real (tiny) training runs on the real MLflow server: CPU seconds of the fit and the
evaluation as run metrics, the scoring cost per 1,000 predictions, and the gate's serving-cost
rule refusing a much costlier challenger that brings no quality gain. The frames are real
flights (tests/datasets.py) handed to the pipeline directly: no DVC or Feast needed here."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from datasets import model_input_frame

from driftloop.cost import Usage
from driftloop.loop.cost_report import build_cost_report, record_loop_cost
from driftloop.registry import client as registry
from driftloop.settings import Settings
from driftloop.training.inputs import TrainingData
from driftloop.training.pipeline import train_and_register

pytestmark = pytest.mark.integration


def _data() -> TrainingData:
    return TrainingData(
        train=model_input_frame(["2013-01"], n=4000, seed=1),
        holdout=model_input_frame(["2013-02"], n=1500, seed=2),
        months=["2013-01"],
        holdout_month="2013-02",
    )


def test_training_runs_log_their_cost_and_the_gate_refuses_a_costlier_challenger(
    make_settings: Callable[..., Settings], mlflow_server: str
) -> None:
    key = uuid.uuid4().hex[:8]
    settings = make_settings(
        mlflow_uri=mlflow_server,
        mlflow={"registered_model": f"cost-{key}", "experiment": f"cost-{key}"},
        training={
            "epochs": 1,
            "batch_size": 512,
            # every quality check passes, so only the cost rule can refuse
            "gate_min_auc_gain_over_baseline": -1.0,
            "gate_min_auc_gain_over_champion": -1.0,
            "gate_slice_tolerance": 1.0,
        },
        cost={"gate_max_serving_cost_increase": 0.25, "gate_min_auc_gain": 0.5, "gate_repeats": 5},
    )
    first = train_and_register("2013-01", "2013-01", settings, data=_data(), hidden_sizes=[16])
    assert first.gate == "champion"
    _, tags, metrics = registry.get_run_data(first.run_id, settings)
    assert metrics["cost.cpu_seconds"] > 0
    assert metrics["cost.fit_cpu_seconds"] > 0
    assert metrics["cost.evaluate_cpu_seconds"] > 0
    assert metrics["cost.cpu_seconds"] == pytest.approx(
        metrics["cost.fit_cpu_seconds"] + metrics["cost.evaluate_cpu_seconds"]
    )
    assert metrics["cost.gpu_seconds"] == 0.0  # trained on CPU
    assert metrics["cost.predict_cpu_s_per_1k"] > 0
    assert "driftloop.cost_gate" not in tags  # a first champion is not judged on cost

    # the retrain loop that made this version records its cost on the run and the version
    loop = record_loop_cost(
        {"run_id": first.run_id, "version": first.version}, Usage(12.0, 30.0), settings
    )
    assert loop["gpu_seconds"] == 0.0  # read back from the run: trained on CPU
    assert loop["money"] == pytest.approx(12 / 3600 * settings.cost.cpu_hour)
    _, _, metrics = registry.get_run_data(first.run_id, settings)
    assert metrics["cost.loop_cpu_seconds"] == 12.0
    assert metrics["cost.loop_wall_seconds"] == 30.0
    tagged = registry.get_version(first.version, settings).tags
    assert tagged["driftloop.cost.loop_cpu_seconds"] == "12.000"

    costly = train_and_register(
        "2013-01", "2013-01", settings, data=_data(), hidden_sizes=[512, 256]
    )
    _, tags, metrics = registry.get_run_data(costly.run_id, settings)
    challenger = metrics["cost.predict_cpu_s_per_1k"]
    champion = metrics["cost.champion_predict_cpu_s_per_1k"]
    assert challenger > 1.25 * champion > 0
    assert costly.gate == "rejected"
    assert costly.alias is None
    assert "without a shown quality gain" in costly.reason
    assert "CPU s per 1,000 predictions" in costly.reason
    assert tags["driftloop.gate"] == "rejected"
    assert "without a shown quality gain" in tags["driftloop.cost_gate"]
    assert "paired passes" in tags["driftloop.cost_gate"]  # the sign test's bound, recorded
    version = registry.get_version(costly.version, settings)
    assert version.tags["driftloop.gate"] == "rejected"
    # `driftloop cost` lists both runs, newest first, priced
    report = build_cost_report(settings, serving_urls=["http://127.0.0.1:9/metrics"])
    assert [t.run_id for t in report.training] == [costly.run_id, first.run_id]
    newest = report.training[0]
    assert newest.version == costly.version
    assert newest.cpu_seconds == metrics["cost.cpu_seconds"]
    assert newest.money == pytest.approx(newest.cpu_seconds / 3600 * settings.cost.cpu_hour)
    assert newest.predict_cpu_s_per_1k == challenger
    champion = registry.get_alias(registry.CHAMPION, settings)
    assert champion is not None
    assert champion.version == first.version
