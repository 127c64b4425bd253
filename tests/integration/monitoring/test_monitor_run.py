"""One monitoring run against a real MLflow server and a capture folder in the documented layout:
reference artifact of the champion's run -> Evidently -> report on disk, in the run's artifacts
and as version tags; the verdict's retrain window goes out as a real Prefect event."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from datasets import model_input_frame

from driftloop.schema import EVENT_TIMESTAMP, LABEL, MODEL_INPUT_COLUMNS, OUTPUT_PROBABILITY

pytestmark = pytest.mark.integration


def write_capture(settings: Any, frame: pd.DataFrame, version: str, when: datetime) -> None:
    """Prediction and feedback files as the serving capture writer lays them out."""
    n = len(frame)
    rid = [f"req-{i // 50}" for i in range(n)]
    row = [i % 50 for i in range(n)]
    pid = [f"{r}:{k}" for r, k in zip(rid, row, strict=True)]
    ts = [when + timedelta(milliseconds=i) for i in range(n)]
    preds = pd.DataFrame(
        {
            "prediction_id": pid,
            "request_id": rid,
            "row": row,
            "ts": pd.to_datetime(ts, utc=True),
            "routing_key": rid,
            "variant": "champion",
            "served": True,
            "model_name": settings.mlflow.registered_model,
            "model_version": version,
            "latency_ms": 3.0,
            OUTPUT_PROBABILITY: frame[OUTPUT_PROBABILITY].to_numpy(),
            "predicted_label": (frame[OUTPUT_PROBABILITY] > 0.3).astype("Int8").to_numpy(),
            "error": None,
            EVENT_TIMESTAMP: frame[EVENT_TIMESTAMP].to_numpy(),
            **{c: frame[c].to_numpy() for c in MODEL_INPUT_COLUMNS},
        }
    )
    day = f"date={when.date().isoformat()}"
    for kind, df in (
        ("predictions", preds),
        (
            "feedback",
            pd.DataFrame(
                {
                    "prediction_id": pid,
                    "request_id": rid,
                    "row": row,
                    LABEL: frame[LABEL].astype("Int8").to_numpy(),
                    "ts": pd.to_datetime(ts, utc=True),
                }
            ),
        ),
    ):
        folder = settings.state / "capture" / kind / day
        folder.mkdir(parents=True, exist_ok=True)
        df.to_parquet(folder / f"part-{uuid.uuid4().hex[:8]}.parquet", index=False)


@pytest.fixture
def champion(mlflow_server: str, prefect_server: str, make_settings: Any) -> Any:
    """A registered champion whose run holds a January reference (no model needed here)."""
    from driftloop.registry.client import CHAMPION, get_client, register_version
    from driftloop.registry.promotion import assign_alias_after_gate

    key = uuid.uuid4().hex[:6]
    settings = make_settings(
        mlflow_uri=mlflow_server,
        prefect_url=prefect_server,
        mlflow={"registered_model": f"monitor-{key}", "experiment": f"monitor-{key}"},
        monitoring={"min_rows": 200, "retrain_window_months": 2},
    )
    client = get_client(settings)
    exp = client.create_experiment(f"monitor-{key}")
    run = client.create_run(exp)
    ref = settings.state / "ref" / "reference.parquet"
    ref.parent.mkdir(parents=True)
    model_input_frame(["2013-01"], n=3000, seed=1).drop(columns=[EVENT_TIMESTAMP]).to_parquet(ref)
    client.log_artifact(run.info.run_id, str(ref), "reference")
    client.set_terminated(run.info.run_id)
    info = register_version(f"runs:/{run.info.run_id}/reference", run.info.run_id, {}, settings)
    assign_alias_after_gate(info.version, CHAMPION, "test champion", settings=settings)
    return settings, info


def test_summer_traffic_is_judged_logged_and_announced(champion: Any) -> None:
    from driftloop.loop.events import DRIFT_EVENT
    from driftloop.loop.trigger import trigger_retrain
    from driftloop.monitoring.monitor import TAG_DRIFT_STATUS, run_monitor
    from driftloop.registry.client import get_client, get_version

    settings, info = champion
    now = datetime.now(UTC)
    write_capture(settings, model_input_frame(["2013-07"], n=1500, seed=3), info.version, now)
    result = run_monitor(settings, start=now - timedelta(minutes=1), end=now + timedelta(minutes=1))
    assert result.rows == 1500
    assert result.months == ["2013-07"]
    # Summer weather drifts (reported), and July's late rate is far above what the January
    # scores say: the calibration gap is what calls for a retrain (the run logged no
    # permutation importance, so drift cannot be weighted by it).
    assert result.verdict.status == "quality"
    assert result.verdict.alarms == ["calibration"]
    assert any(i.startswith("data drift (information)") for i in result.verdict.info)
    assert result.inputs is not None
    assert result.inputs.importance == {}
    assert result.live_auc is not None
    assert result.retrain_window == {
        "start_month": "2013-05",
        "end_month": "2013-06",
        "holdout_month": "2013-07",
    }
    assert result.report is not None
    assert result.report.html.exists()
    assert result.mlflow_logged
    tags = get_version(info.version, settings).tags
    assert tags[TAG_DRIFT_STATUS] == "quality"
    logged = get_client(settings).list_artifacts(info.run_id, f"monitoring/{result.report.id}")
    assert {Path(f.path).name for f in logged} >= {"drift.html", "drift.json", "summary.json"}

    decision = trigger_retrain(result, settings)
    assert decision.retrain_requested
    assert decision.event == DRIFT_EVENT
    assert decision.payload["start_month"] == "2013-05"

    # Outside the window nothing was captured: too few rows is not an alarm.
    quiet = run_monitor(settings, start=now - timedelta(hours=2), end=now - timedelta(hours=1))
    assert quiet.verdict.status == "insufficient_data"
    assert quiet.report is None
