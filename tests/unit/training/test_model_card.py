"""The model card's content and rendering from a pipeline's records (no MLflow: the logging and
the card of every registered version are in tests/integration/training/test_model_card.py)."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest

from driftloop.schema import EVENT_TIMESTAMP, LABEL
from driftloop.settings import Settings
from driftloop.training.calibration import Calibration
from driftloop.training.inputs import TrainingData
from driftloop.training.job import Evaluation, FittedRun, TrainJob
from driftloop.training.model_card import build_card, render_markdown, slice_summary
from driftloop.training.trainer import TrainParams


def _metrics(auc: float) -> dict[str, float]:
    return {
        "roc_auc": auc,
        "log_loss": 0.5 - auc / 10,
        "brier": 0.2,
        "ece": 0.02,
        "precision": 0.4,
        "recall": 0.7,
        "threshold": 0.21,
        "cost_per_row": 0.8,
        "rows": 1000.0,
        "late_rate": 0.22,
    }


SLICES = pd.DataFrame(
    [
        # slice, value, rows, roc_auc, late_rate, mean_predicted, champion_roc_auc
        ("carrier", "UA", 900, 0.74, 0.20, 0.21, 0.73),
        ("carrier", "B6", 800, 0.60, 0.30, 0.18, 0.70),  # worst vs overall and vs champion
        ("carrier", "OO", 12, 0.20, 0.50, 0.10, 0.90),  # too small to rank
        ("origin", "EWR", 1500, 0.70, 0.25, 0.25, math.nan),
    ],
    columns=[
        "slice",
        "value",
        "rows",
        "roc_auc",
        "late_rate",
        "mean_predicted",
        "champion_roc_auc",
    ],
)


def _records(settings: Settings) -> tuple[TrainJob, FittedRun, Evaluation]:
    times = pd.date_range("2013-01-01", periods=200, freq="h", tz="UTC")
    train = pd.DataFrame({EVENT_TIMESTAMP: times, LABEL: np.arange(200) % 2})
    data = TrainingData(
        train=train,
        holdout=train.head(50),
        months=["2013-01"],
        holdout_month="2013-02",
        data_rev="abc123def456",
        data_hashes={"flights/2013-01": "0123456789abcdef"},
        feature_service="flight_delay_v1",
    )
    job = TrainJob(
        data=data,
        params=TrainParams.from_settings(settings.training),
        checkpoint_dir=settings.state / "ckpt",
        run_name="test",
    )
    calibration = Calibration(1.1, -0.05, "platt", 40, 0.05, 0.02, 0.52, 0.50)
    fitted = FittedRun(
        run_id="run-1",
        model_uri="models:/m-1",
        bundle=SimpleNamespace(calibration=calibration),  # type: ignore[arg-type]
        history=[],
        device="cpu",
        samples_per_s=1.0,
        best_epoch=2,
    )
    evaluation = Evaluation(
        metrics={
            "model": _metrics(0.72),
            "baseline": _metrics(0.62),
            "logistic": _metrics(0.70),
            "champion": _metrics(0.73),
        },
        decision_gate="rejected",
        decision_reason="ROC AUC 0.7200 does not beat champion v3 0.7300 by 0 on the same holdout",
        champion_version="3",
        slices=SLICES,
    )
    return job, fitted, evaluation


@pytest.fixture
def card(make_settings: Any) -> dict[str, Any]:
    settings = make_settings(training={"gate_min_slice_rows": 300, "validation_share": 0.1})
    job, fitted, evaluation = _records(settings)
    importance = [{"feature": "dep_hour", "importance_mean": 0.03, "importance_std": 0.01}]
    shift = {
        "status": "ok",
        "rev": "abc",
        "reference_rev": None,
        "findings": [],
        "block": "revised",
    }
    return build_card(job, fitted, evaluation, "4", settings, importance, shift)


def test_card_holds_the_gate_decision_window_revision_and_comparisons(
    card: dict[str, Any],
) -> None:
    assert card["version"] == "4"
    assert card["gate"]["decision"] == "rejected"
    assert card["gate"]["alias"] is None
    assert "does not beat champion v3" in card["gate"]["reason"]
    assert card["training"]["window"] == "2013-01..2013-01"
    assert card["training"]["data_rev"] == "abc123def456"
    assert card["training"]["rows"] == {"fit": 180, "validation": 20, "holdout": 50}
    assert card["features"]["feature_service"] == "flight_delay_v1"
    vs_champion = card["comparisons"]["champion"]["roc_auc"]
    assert vs_champion["difference"] == pytest.approx(-0.01)
    assert vs_champion["model_worse"] is True
    assert card["comparisons"]["baseline"]["log_loss"]["model_worse"] is False  # lower is better
    assert card["comparisons"]["baseline"]["brier"]["model_worse"] is False  # equal
    assert card["calibration"]["method"] == "platt"
    assert card["importance"][0]["feature"] == "dep_hour"
    assert card["data_shift"]["status"] == "ok"
    assert card["known_limits"]
    assert card["intended_use"]["out_of_scope"]
    json.dumps(card, allow_nan=False)  # NaN-free JSON


def test_worst_slice_gaps_rank_only_slices_with_enough_rows() -> None:
    summary = slice_summary(SLICES, overall_auc=0.72, min_rows=300)
    assert summary["worst_vs_overall"][0]["value"] == "B6"
    assert "OO" not in {r["value"] for r in summary["worst_vs_overall"]}
    assert summary["worst_vs_champion"][0]["value"] == "B6"
    assert summary["worst_vs_champion"][0]["gap_vs_champion"] == pytest.approx(0.10)
    assert summary["worst_calibration"][0]["value"] == "B6"  # |0.18 - 0.30|
    assert len(summary["rows"]) == 4  # every slice is in the card, small ones too


def test_markdown_shows_the_decision_metrics_slices_and_limits(card: dict[str, Any]) -> None:
    text = render_markdown(card)
    assert "**Gate decision: rejected**" in text
    assert card["gate"]["reason"] in text
    assert "| champion v3 | 0.7300 |" in text
    assert "carrier=B6" in text
    assert "## Known limits" in text
    assert "dep_hour" in text
    assert "abc123def456" in text
