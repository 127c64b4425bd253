"""Tuning (Optuna study in SQLite, nested MLflow runs, resumable), training with the best
parameters, and reproducing a version from its recorded data revision."""

from __future__ import annotations

import json
from typing import Any

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_tune_resumes_and_best_params_train_a_reproducible_version(train_settings: Any) -> None:
    from driftloop.registry import client as registry
    from driftloop.training.pipeline import train_and_register
    from driftloop.training.reproduce import reproduce
    from driftloop.training.tuning import tune

    s = train_settings
    first = tune("2013-01", "2013-01", trials=2, settings=s, study_name="t", epochs=1)
    again = tune("2013-01", "2013-01", trials=1, settings=s, study_name="t", epochs=1)
    assert first.trials_total == 2
    assert again.trials_total == 3
    saved = json.loads(first.best_params_path.read_text())
    assert saved["study"] == "t"
    assert "learning_rate" in saved["params"]

    client = registry.get_client(s)
    children = client.search_runs(
        [client.get_experiment_by_name(s.mlflow.experiment).experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{first.run_id}'",
    )
    assert len(children) == 2  # one nested run per trial

    best = json.loads(again.best_params_path.read_text())["params"]
    result = train_and_register("2013-01", "2013-01", s, use_best_params=True, epochs=2)
    assert result.params["learning_rate"] == pytest.approx(best["learning_rate"])
    assert result.params["hidden_sizes"] == best["hidden_sizes"]

    repro = reproduce(result.version, s)
    assert repro.data_rev == registry.get_version(result.version, s).tags["driftloop.data_rev"]
    assert repro.run_id != result.run_id
    assert repro.max_abs_difference() < 1e-6  # CPU training is deterministic
    found = client.search_model_versions(f"name = '{s.mlflow.registered_model}'")
    assert len(found) == 1  # reproducing registers nothing
