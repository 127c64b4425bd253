"""Model cards on the real stack (DVC partitions, Feast, a real MLflow server): every registered
version, the one the gate rejects included, has its card (Markdown and JSON) in its run with the
gate's reason, and promoting a challenger writes the champion-vs-challenger card."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from driftloop.registry import client as registry
from driftloop.schema import LABEL

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _artifact(run_id: str, path: str, settings: Any, tmp: Path) -> str:
    return registry.download_run_artifact(run_id, path, tmp, settings).read_text()


def test_every_version_has_a_card_and_promotion_writes_the_comparison(
    train_settings: Any, tmp_path: Path
) -> None:
    from driftloop.registry.promotion import assign_alias_after_gate, promote, start_rollout
    from driftloop.training.inputs import load_training_data
    from driftloop.training.model_card import TAG_MODEL_CARD, read_card
    from driftloop.training.pipeline import train_and_register

    s = train_settings
    champion = train_and_register("2013-01", "2013-01", s, epochs=2)
    assert champion.gate == "champion", champion.reason
    data = load_training_data("2013-01", "2013-01", s)
    data.train[LABEL] = np.random.default_rng(0).permutation(data.train[LABEL].to_numpy())
    weak = train_and_register("2013-01", "2013-01", s, data=data, epochs=1)
    assert weak.gate == "rejected"

    for result in (champion, weak):
        info = registry.get_version(result.version, s)
        assert info.tags[TAG_MODEL_CARD] == f"runs:/{result.run_id}/model_card/card.md"
        card = read_card(result.version, s)
        assert card["version"] == result.version
        assert card["gate"]["decision"] == result.gate
        assert card["gate"]["reason"] == result.reason == info.tags["driftloop.gate_reason"]
        assert card["training"]["data_rev"] == info.tags["driftloop.data_rev"]
        assert card["training"]["window"] == "2013-01..2013-01"
        assert card["metrics"]["model"]["roc_auc"] == pytest.approx(
            result.metrics["model"]["roc_auc"]
        )
        assert {r["feature"] for r in card["importance"]} >= {"dep_hour", "carrier"}
        assert card["slices"]["rows"]
        # The data profile check ran before training and is in the card: the window's months
        # came in one ingest, so February is judged against January; nothing moved.
        assert card["data_shift"]["status"] == "ok"
        markdown = _artifact(result.run_id, "model_card/card.md", s, tmp_path / result.version)
        assert f"# Model card: {s.mlflow.registered_model} version {result.version}" in markdown
        assert result.reason in markdown
        assert "## Known limits" in markdown
        _, run_tags, _ = registry.get_run_data(result.run_id, s)
        assert run_tags["driftloop.data_shift"] == "ok"

    weak_card = read_card(weak.version, s)
    assert weak_card["champion_version"] == champion.version
    assert weak_card["comparisons"]["champion"]["roc_auc"]["difference"] == pytest.approx(
        weak.metrics["model"]["roc_auc"] - weak.metrics["champion"]["roc_auc"]
    )
    assert "baseline" in weak_card["gate"]["reason"]

    # Promotion: the rejected version stands in as a canaried challenger.
    assign_alias_after_gate(weak.version, registry.CHALLENGER, "stand-in", settings=s)
    start_rollout(0, "test", s)
    evidence = {"decision": "promote", "challenger_auc": 0.71, "champion_auc": 0.70}
    record = promote("test", "canary passed (test)", evidence, s, weak.version)
    name = f"promotion-v{champion.version}-v{weak.version}"
    assert record["promotion_card"] == f"runs:/{weak.run_id}/model_card/{name}.md"
    assert (
        registry.get_version(weak.version, s).tags["driftloop.promotion_card"]
        == (record["promotion_card"])
    )
    promo = json.loads(_artifact(weak.run_id, f"model_card/{name}.json", s, tmp_path / "p"))
    assert promo["decision"]["reason"] == "canary passed (test)"
    assert promo["decision"]["audit_hash"] == record["hash"]
    assert promo["champion_before"]["version"] == champion.version
    assert promo["new_champion"]["version"] == weak.version
    assert promo["canary_evidence"] == evidence
    same = promo["same_holdout"]  # the challenger was evaluated against this champion
    assert same["holdout_month"] == "2013-02"
    assert same["challenger"]["roc_auc"] == pytest.approx(weak.metrics["model"]["roc_auc"])
    assert same["champion"]["roc_auc"] == pytest.approx(weak.metrics["champion"]["roc_auc"])
    text = _artifact(weak.run_id, f"model_card/{name}.md", s, tmp_path / "pm")
    assert f"v{weak.version} replaces v{champion.version}" in text
    assert "canary passed (test)" in text
