"""Attribution drift from explanation files in the documented layout: no reference before the
version's first explained window, too few rows is a status, a share change above the setting is
drift naming the feature, the complete first window is frozen (and outlives its capture files),
unrouted rows are not judged. Attribution values are scripted here (unit level); the real
model's attributions through a real server are tested in
tests/integration/serving/test_explain.py."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from driftloop.monitoring.attribution import (
    attribution_drift,
    explanation_table,
    explanations_dir,
    read_explanations,
    render_html,
)
from driftloop.settings import Settings

FEATURES = ["carrier", "distance", "visib", "temp"]
T0 = datetime(2026, 3, 1, 8, tzinfo=UTC)


def _settings(tmp_path: Path) -> Settings:
    return Settings(
        state_dir=tmp_path,
        mlflow={"registered_model": "m"},
        monitoring={"attribution_shift": 0.1, "attribution_min_rows": 50},
    )


def _write(
    settings: Settings,
    when: datetime,
    scale: list[float],
    rows: int = 100,
    version: str = "3",
    routed: bool = True,
    seed: int = 0,
) -> None:
    """``rows`` explained rows at ``when`` whose |attribution| per feature is about ``scale``."""
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(rows, len(FEATURES))) * np.asarray(scale)
    table = explanation_table(
        {
            "request_id": f"r-{when:%H%M}-{seed}",
            "ts": when,
            "model_name": "m",
            "model_version": version,
            "variant": "champion",
            "routed": routed,
        },
        FEATURES,
        values,
        np.full(rows, 0.3),
        0.2,
        np.full(rows, 1e-3),
    )
    folder = explanations_dir(settings) / f"date={when.date().isoformat()}"
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, folder / f"part-{when:%H%M%S}-{seed}-{version}.parquet")


BASE = [0.10, 0.05, 0.05, 0.05]


def test_no_reference_before_the_first_explained_window(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    _write(settings, T0, BASE)
    drift = attribution_drift(settings, "m", "3", T0 - timedelta(hours=1), T0 + timedelta(hours=1))
    assert drift.status == "no_reference"
    assert drift.rows == 100
    assert drift.table == []


def test_too_few_rows_is_a_status_not_a_verdict(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    _write(settings, T0, BASE)
    _write(settings, T0 + timedelta(hours=2), BASE, rows=10)
    drift = attribution_drift(settings, "m", "3", T0 + timedelta(hours=1), T0 + timedelta(hours=3))
    assert drift.status == "insufficient_data"
    assert "10 explained rows" in drift.reason


def test_a_planted_share_change_is_drift_naming_the_feature(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    _write(settings, T0, BASE)
    shifted = [0.10, 0.05, 0.30, 0.05]  # visib now carries half of the attribution
    _write(settings, T0 + timedelta(hours=2), shifted, seed=1)
    _write(settings, T0 + timedelta(hours=2), shifted, version="4", seed=2)  # another version
    drift = attribution_drift(settings, "m", "3", T0 + timedelta(hours=1), T0 + timedelta(hours=3))
    assert drift.status == "drifted", drift.reason
    assert drift.rows == 100
    assert drift.drifted_features[0] == "visib"
    top = drift.table[0]
    assert top["feature"] == "visib"
    assert top["current_share"] > top["reference_share"] + 0.1
    assert drift.max_abs_delta == 1e-3
    page = render_html(drift)
    assert "<td>visib</td>" in page
    assert "http" not in page  # self-contained


def test_a_stable_window_is_ok(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    _write(settings, T0, BASE)
    _write(settings, T0 + timedelta(hours=2), BASE, seed=1)
    drift = attribution_drift(settings, "m", "3", T0 + timedelta(hours=1), T0 + timedelta(hours=3))
    assert drift.status == "ok", drift.reason
    assert drift.drifted_features == []


def test_the_complete_first_window_is_frozen_and_outlives_its_files(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    _write(settings, T0, BASE)
    _write(settings, T0 + timedelta(hours=3), BASE, seed=1)
    # window of 1 h starting 3 h after the first explanation: the first window is complete
    first = attribution_drift(settings, "m", "3", T0 + timedelta(hours=3), T0 + timedelta(hours=4))
    assert first.reference is not None
    assert first.reference.frozen
    assert first.reference.rows == 100
    frozen = tmp_path / "monitoring" / "attribution" / "m-v3.json"
    assert frozen.exists()
    shutil.rmtree(explanations_dir(settings) / f"date={T0.date().isoformat()}")
    _write(settings, T0 + timedelta(days=2), [0.10, 0.30, 0.05, 0.05], seed=2)
    later = attribution_drift(
        settings, "m", "3", T0 + timedelta(days=2), T0 + timedelta(days=2, hours=1)
    )
    assert later.reference == first.reference
    assert later.status == "drifted"
    assert later.drifted_features[0] == "distance"


def test_unrouted_rows_are_not_judged(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    _write(settings, T0, BASE)
    _write(settings, T0 + timedelta(hours=2), [0.1, 0.05, 0.3, 0.05], routed=False, seed=1)
    drift = attribution_drift(settings, "m", "3", T0 + timedelta(hours=1), T0 + timedelta(hours=3))
    assert drift.status == "insufficient_data"
    assert drift.rows == 0
    assert len(read_explanations(settings, model_version="3")) == 200
