"""Train -> evaluate -> gate -> register on the real stack: DVC partitions, Feast point-in-time
frames, a real MLflow server, and the Prefect flow on a real Prefect server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from driftloop.registry import client as registry
from driftloop.registry.json_tags import expand_json_tags
from driftloop.registry.promotion import assign_alias_after_gate, set_weight
from driftloop.schema import LABEL, MODEL_INPUT_COLUMNS, OUTPUT_PROBABILITY

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CONTRACT_TAGS = {
    "driftloop.run_id",
    "driftloop.git_commit",
    "driftloop.data_rev",
    "driftloop.data_hashes",
    "driftloop.feature_service",
    "driftloop.train_window",
    "driftloop.holdout_month",
    "driftloop.holdout_auc",
    "driftloop.baseline_auc",
    "driftloop.compared_with",
    "driftloop.gate",
    "driftloop.gate_reason",
}


def test_flow_registers_champion_then_gates_weak_and_challenger_models(
    train_settings: Any, prefect_server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import mlflow

    from driftloop.cli import main
    from driftloop.training.inputs import load_training_data
    from driftloop.training.lineage import lineage
    from driftloop.training.pipeline import train_and_register
    from flows.train import train

    s = train_settings
    summary = train(start_month="2013-01", end_month="2013-01", epochs=2)

    # First model beats the naive baseline -> champion, with every lineage tag.
    assert summary["gate"] == "champion", summary["reason"]
    assert summary["metrics"]["model"]["roc_auc"] > summary["metrics"]["baseline"]["roc_auc"]
    champion = registry.get_alias(registry.CHAMPION, s)
    assert champion is not None
    assert champion.version == summary["version"]
    assert set(champion.tags) >= CONTRACT_TAGS
    assert champion.tags["driftloop.train_window"] == "2013-01..2013-01"
    assert champion.tags["driftloop.holdout_month"] == "2013-02"
    assert champion.tags["driftloop.compared_with"] == "none"
    # a large JSON tag is a run artifact behind a short pointer; readers expand it
    assert champion.tags["driftloop.data_hashes"].startswith(f"runs:/{champion.run_id}/")
    hashes = json.loads(expand_json_tags(champion.tags, s)["driftloop.data_hashes"])
    assert {"flights/2013-01", "weather/2013-01", "flights/2013-02", "planes/planes"} <= set(hashes)

    # The reference sample and the pyfunc contract.
    run_id = champion.tags["driftloop.run_id"]
    ref = pd.read_parquet(
        mlflow.artifacts.download_artifacts(
            f"runs:/{run_id}/reference/reference.parquet", tracking_uri=s.mlflow.uri
        )
    )
    assert 0 < len(ref) <= 5000
    assert set([*MODEL_INPUT_COLUMNS, LABEL, OUTPUT_PROBABILITY]) <= set(ref.columns)
    model = mlflow.pyfunc.load_model(champion.uri)
    out = model.predict(ref[MODEL_INPUT_COLUMNS].head(50))
    assert list(out.columns) == [OUTPUT_PROBABILITY]
    fast = model.unwrap_python_model().predict_proba(ref.head(50))
    np.testing.assert_allclose(out[OUTPUT_PROBABILITY].to_numpy(), fast)
    np.testing.assert_allclose(fast, ref[OUTPUT_PROBABILITY].head(50), atol=1e-6)

    # The calibration fitted on the validation rows is logged with the run and served.
    bundle = model.unwrap_python_model().bundle
    run_params, _, run_metrics = registry.get_run_data(run_id, s)
    assert run_params["calibration_method"] == bundle.calibration.method
    assert run_metrics["calibration_slope"] == pytest.approx(bundle.calibration.slope)
    assert run_metrics["calibration_intercept"] == pytest.approx(bundle.calibration.intercept)
    assert (
        run_metrics["val_log_loss_after_calibration"]
        <= run_metrics["val_log_loss_before_calibration"]
    )
    assert {"val_ece_before_calibration", "val_ece_after_calibration"} <= set(run_metrics)
    np.testing.assert_allclose(
        ref[OUTPUT_PROBABILITY],
        bundle.calibration.apply(bundle.raw_proba(ref)),
        atol=1e-6,
    )

    # Lineage: every reference resolves; the CLI prints the chain and exits 0.
    record = lineage(f"{s.mlflow.registered_model}@champion", s)
    assert record.ok, record.lines()
    assert {c.reference for c in record.checks} >= {
        "MLflow run",
        "data revision",
        "partition flights/2013-01",
        "feature service",
    }
    main(["lineage", f"{s.mlflow.registered_model}@champion"])
    printed = capsys.readouterr().out
    assert champion.tags["driftloop.data_rev"] in printed
    assert "[  ok   ] MLflow run" in printed

    # A deliberately weak model (shuffled labels) is registered without an alias.
    data = load_training_data("2013-01", "2013-01", s)
    rng = np.random.default_rng(0)
    data.train[LABEL] = rng.permutation(data.train[LABEL].to_numpy())
    weak = train_and_register("2013-01", "2013-01", s, data=data, epochs=1)
    assert weak.gate == "rejected"
    assert weak.alias is None
    info = registry.get_version(weak.version, s)
    assert info.tags["driftloop.gate"] == "rejected"
    assert "baseline" in info.tags["driftloop.gate_reason"]
    assert info.aliases == ()
    assert registry.get_alias(registry.CHAMPION, s).version == champion.version

    # A model allowed through the champion comparison becomes challenger at canary weight 0
    # (an earlier challenger's weight does not carry over).
    assign_alias_after_gate(weak.version, registry.CHALLENGER, "stand-in", settings=s)
    set_weight(50, "test", "stand-in challenger", s)
    lenient = s.model_copy(
        update={
            "training": s.training.model_copy(
                update={"gate_min_auc_gain_over_champion": -1.0, "gate_slice_tolerance": 1.0}
            )
        }
    )
    second = train_and_register("2013-01", "2013-01", lenient, seed=99)
    assert second.gate == "challenger"
    assert second.compared_with == champion.version
    assert registry.get_alias(registry.CHALLENGER, s).version == second.version
    assert registry.registry_snapshot(s).weight == 0
    found = registry.get_client(s).search_model_versions(f"name = '{s.mlflow.registered_model}'")
    assert sorted((v.version for v in found), key=int) == [
        champion.version,
        weak.version,
        second.version,
    ]

    # A reference that no longer resolves fails the lineage check (exit 1).
    registry.get_client(s).delete_run(weak.run_id)
    assert not lineage(f"{s.mlflow.registered_model}:{weak.version}", s).ok
    with pytest.raises(SystemExit) as exit_info:
        main(["lineage", f"{s.mlflow.registered_model}:{weak.version}"])
    assert exit_info.value.code == 1


def test_q1_model_beats_the_naive_baseline_on_april(train_settings: Any, tmp_path: Path) -> None:
    """Acceptance: 2013-01..03 with the default 8 epochs, judged on April."""
    from driftloop.training.pipeline import train_and_register

    result = train_and_register("2013-01", "2013-03", train_settings, epochs=8)
    m = result.metrics
    summary = {k: round(v["roc_auc"], 4) for k, v in m.items()}
    print(f"April ROC AUC: {summary}")  # noqa: T201 - reported numbers
    assert m["model"]["roc_auc"] > m["baseline"]["roc_auc"] + 0.01
    assert result.gate == "champion"
