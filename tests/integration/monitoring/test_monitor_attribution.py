"""A monitoring run against the real MLflow server reports attribution drift beside feature
drift: in its record (``MonitorResult.to_dict``) and as ``attribution.json`` / ``attribution.html``
in the report folder, logged with the report into the version's run. Explanation files are
written in the documented layout with scripted attribution values (what the model leans on is
tested with a real model in tests/integration/serving/test_explain.py)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from datasets import model_input_frame
from test_monitor_run import write_capture

from driftloop.monitoring.attribution import explanation_table, explanations_dir
from driftloop.schema import EVENT_TIMESTAMP, MODEL_INPUT_COLUMNS

pytestmark = pytest.mark.integration


def _explanations(settings: Any, version: str, when: datetime, shift: str | None) -> None:
    """200 explained rows at ``when``: every feature's |attribution| about 0.02, ``shift``'s
    ten times that."""
    rng = np.random.default_rng(len(shift or ""))
    scale = np.full(len(MODEL_INPUT_COLUMNS), 0.02)
    if shift is not None:
        scale[MODEL_INPUT_COLUMNS.index(shift)] = 0.2
    table = explanation_table(
        {
            "request_id": f"r-{uuid.uuid4().hex[:6]}",
            "ts": when,
            "model_name": settings.mlflow.registered_model,
            "model_version": version,
            "variant": "champion",
            "routed": True,
        },
        list(MODEL_INPUT_COLUMNS),
        rng.normal(size=(200, len(MODEL_INPUT_COLUMNS))) * scale,
        np.full(200, 0.3),
        0.2,
        np.full(200, 1e-3),
    )
    folder = explanations_dir(settings) / f"date={when.date().isoformat()}"
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, folder / f"part-{uuid.uuid4().hex[:8]}.parquet")


@pytest.fixture
def champion(mlflow_server: str, make_settings: Any) -> Any:
    """A registered champion whose run holds a January reference (no model needed here)."""
    from driftloop.registry.client import CHAMPION, get_client, register_version
    from driftloop.registry.promotion import assign_alias_after_gate

    key = uuid.uuid4().hex[:6]
    settings = make_settings(
        mlflow_uri=mlflow_server,
        mlflow={"registered_model": f"monitor-attr-{key}", "experiment": f"monitor-attr-{key}"},
        monitoring={"min_rows": 200, "attribution_min_rows": 100},
    )
    client = get_client(settings)
    run = client.create_run(client.create_experiment(f"monitor-attr-{key}"))
    ref = settings.state / "ref" / "reference.parquet"
    ref.parent.mkdir(parents=True)
    model_input_frame(["2013-01"], n=2000, seed=1).drop(columns=[EVENT_TIMESTAMP]).to_parquet(ref)
    client.log_artifact(run.info.run_id, str(ref), "reference")
    client.set_terminated(run.info.run_id)
    info = register_version(f"runs:/{run.info.run_id}/reference", run.info.run_id, {}, settings)
    assign_alias_after_gate(info.version, CHAMPION, "test champion", settings=settings)
    return settings, info


def test_the_monitor_reports_attribution_drift_beside_feature_drift(champion: Any) -> None:
    from driftloop.monitoring.monitor import run_monitor
    from driftloop.registry.client import get_client

    settings, info = champion
    now = datetime.now(UTC)
    _explanations(settings, info.version, now - timedelta(hours=2), None)  # first window
    _explanations(settings, info.version, now, "dep_hour")
    write_capture(settings, model_input_frame(["2013-01"], n=500, seed=3), info.version, now)
    result = run_monitor(settings, start=now - timedelta(minutes=1), end=now + timedelta(minutes=1))
    assert result.report is not None
    drift = result.to_dict()["attribution_drift"]
    assert drift["status"] == "drifted", drift["reason"]
    assert drift["drifted_features"][0] == "dep_hour"
    assert drift["reference"]["frozen"]
    assert drift["table"][0]["feature"] == "dep_hour"
    assert (result.report.folder / "attribution.html").exists()
    assert result.mlflow_logged
    logged = get_client(settings).list_artifacts(info.run_id, f"monitoring/{result.report.id}")
    assert {"attribution.html", "attribution.json"} <= {Path(f.path).name for f in logged}
