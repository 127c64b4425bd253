"""The training gate refuses a challenger that widens the error-rate gap between carriers: a
real champion (a tiny training run on real flights, registered on the real MLflow server), then
a challenger trained the same way whose predictions are planted to err on one carrier (its
probabilities inverted for that carrier's flights), through the real evaluate step (the
champion loaded from the registry and scored on the same holdout at its served threshold) and
the real register step. The frames are real flights (tests/datasets.py) handed to the pipeline
directly: no DVC or Feast needed here."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from datasets import model_input_frame

from driftloop.registry import client as registry
from driftloop.settings import Settings
from driftloop.training.inputs import TrainingData

pytestmark = pytest.mark.integration


def _data() -> TrainingData:
    return TrainingData(
        train=model_input_frame(["2013-01"], n=12000, seed=1),
        holdout=model_input_frame(["2013-02"], n=2000, seed=2),
        months=["2013-01"],
        holdout_month="2013-02",
    )


class ErrsOnOneCarrier:
    """A fitted bundle whose P(late) is inverted for the flights of one carrier (its errors on
    that carrier planted); everything else is the bundle's own."""

    def __init__(self, bundle: Any, carrier: str) -> None:
        self._bundle, self.carrier = bundle, carrier

    def __getattr__(self, name: str) -> Any:
        return getattr(self._bundle, name)

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        p = np.asarray(self._bundle.predict_proba(frame), dtype=np.float64)
        hit = frame["carrier"].astype(str).to_numpy() == self.carrier
        return np.where(hit, 1.0 - p, p)


def test_the_gate_refuses_a_challenger_that_errs_on_one_carrier(
    make_settings: Callable[..., Settings], mlflow_server: str, tmp_path: Path
) -> None:
    from driftloop.training.model_card import CARD_MARKDOWN
    from driftloop.training.pipeline import (
        evaluate,
        fit_and_log,
        prepare,
        register,
        train_and_register,
    )

    key = uuid.uuid4().hex[:8]
    settings = make_settings(
        mlflow_uri=mlflow_server,
        mlflow={"registered_model": f"fair-{key}", "experiment": f"fair-{key}"},
        training={
            # enough to learn something: the planted errors must cross the served threshold
            "epochs": 3,
            "batch_size": 256,
            # every other check passes, so only the fairness rule can refuse
            "gate_min_auc_gain_over_baseline": -1.0,
            "gate_min_auc_gain_over_champion": -1.0,
            "gate_slice_tolerance": 1.0,
            "gate_fairness_tolerance": 0.05,
            "fairness_min_slice_rows": 100,
        },
    )
    first = train_and_register("2013-01", "2013-01", settings, data=_data(), hidden_sizes=[32])
    assert first.gate == "champion", first.reason
    assert "worst error-rate gaps: carrier" in first.reason  # stated even with nothing to compare
    champion = registry.get_version(first.version, settings)

    data = _data()
    carrier = str(data.holdout["carrier"].value_counts().index[0])  # the largest carrier
    job = prepare("2013-01", "2013-01", settings, {"hidden_sizes": [32]}, data=data)
    fitted = fit_and_log(job, settings)
    fitted.bundle = ErrsOnOneCarrier(fitted.bundle, carrier)  # type: ignore[assignment]
    result = register(job, fitted, evaluate(job, fitted, settings), settings)

    assert result.gate == "rejected", result.reason
    assert result.alias is None
    assert result.reason.startswith("fairness: carrier gap ")
    assert f"({carrier} vs " in result.reason
    assert f"against champion v{first.version}" in result.reason
    assert "> tolerance 0.05" in result.reason

    # the numbers: run metrics, the evaluation report, each version at its served threshold
    _, _, metrics = registry.get_run_data(result.run_id, settings)
    gap = metrics["holdout_model_fairness_point_gap_carrier"]
    change = metrics["holdout_fairness_gap_change_carrier"]
    lower = metrics["holdout_fairness_gap_change_carrier_lower"]
    assert change == pytest.approx(gap - metrics["holdout_champion_fairness_point_gap_carrier"])
    assert 0.05 < lower < change < metrics["holdout_fairness_gap_change_carrier_upper"]
    assert f"{gap:.4f} ({carrier} vs " in result.reason
    assert f"widens {change:+.4f} [{lower:+.4f}, " in result.reason
    assert "refused with probability <= 5%" in result.reason  # the rule's stated error rate
    client = registry.get_client(settings)
    report = json.loads(
        Path(
            client.download_artifacts(result.run_id, "evaluation/fairness.json", str(tmp_path))
        ).read_text()
    )
    assert report["verdict"]["allowed"] is False
    assert report["verdict"]["changes"]["carrier"]["lower"] == pytest.approx(lower)
    assert report["model"]["gaps"]["carrier"]["worst"] == carrier
    assert report["champion"]["threshold"] == float(champion.tags[registry.THRESHOLD_TAG])
    version = registry.get_version(result.version, settings)
    assert report["model"]["threshold"] == float(version.tags[registry.THRESHOLD_TAG])
    assert version.tags["driftloop.gate"] == "rejected"
    assert version.tags["driftloop.gate_reason"].startswith("fairness: carrier gap")
    card = Path(client.download_artifacts(result.run_id, CARD_MARKDOWN, str(tmp_path))).read_text()
    assert "## Fairness: error-rate gaps between carriers and between origins" in card
    assert f"carrier={carrier}" in card
    assert "Gate rule (refused)" in card
    # the champion is untouched
    assert registry.get_alias(registry.CHAMPION, settings).version == first.version  # type: ignore[union-attr]
