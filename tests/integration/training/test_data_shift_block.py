"""The data profile check before training, with a real data repository (git + DVC) and a real
MLflow server: a planted shift in a month the window reads stops training before it starts
(``settings.data.profile_block=revised``, the default) and the run records every number; the
same data without the plant, or with ``profile_block=off``, trains on."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from datasets import dataset_dir, raw_table

from driftloop.errors import TrainingError
from driftloop.schema import EVENT_TIMESTAMP, LABEL

pytestmark = pytest.mark.integration


def _doubled_departure_delays(raw: pd.DataFrame) -> pd.DataFrame:
    """January's departure delays doubled, ``dep_time`` moved to match (contract-valid)."""
    out = raw.copy()
    rows = (out["month"] == 1) & out["dep_delay"].notna()
    scheduled = out["sched_dep_time"] // 100 * 60 + out["sched_dep_time"] % 100
    departed = (scheduled + 2 * out["dep_delay"]) % 1440
    out.loc[rows, "dep_delay"] = out.loc[rows, "dep_delay"] * 2
    out.loc[rows, "dep_time"] = (departed // 60 * 100 + departed % 60)[rows]
    return out


def _frame(rows: int) -> pd.DataFrame:
    """Stand-in model rows: the check reads the data repository's profiles, not these."""
    times = pd.date_range("2013-01-01", periods=rows, freq="h", tz="UTC")
    return pd.DataFrame({EVENT_TIMESTAMP: times, LABEL: np.arange(rows) % 2})


def _job(settings: Any, rev: str) -> Any:
    from driftloop.data.store import partition_hashes
    from driftloop.training.inputs import TrainingData
    from driftloop.training.job import TrainJob
    from driftloop.training.pipeline import checkpoint_dir, resolve_params

    data = TrainingData(
        train=_frame(200),
        holdout=_frame(50),
        months=["2013-01"],
        holdout_month="2013-02",
        data_rev=rev,
        data_hashes=partition_hashes(["2013-01", "2013-02"], settings, rev=rev),
        feature_service="flight_delay_v1",
    )
    params = resolve_params(settings)
    return TrainJob(data, params, checkpoint_dir(settings, data, params), "shift check")


def test_a_planted_shift_blocks_training_and_the_run_records_why(
    mlflow_server: str, make_settings: Any, tmp_path: Path
) -> None:
    from driftloop.data.ingest import ingest_months
    from driftloop.registry import client as registry
    from driftloop.training.pipeline import check_data_shift, fit_and_log

    folder = tmp_path / "dataset"
    folder.mkdir()
    for name in ("weather.csv", "planes.csv", "airlines.csv", "airports.csv"):
        shutil.copy(dataset_dir() / name, folder / name)
    flights = raw_table("flights")
    jan_feb = pd.concat(
        [flights[flights["month"] == 1].head(2000), flights[flights["month"] == 2].head(2000)]
    )
    jan_feb.to_csv(folder / "flights.csv", index=False)
    key = uuid.uuid4().hex[:8]
    settings = make_settings(
        mlflow_uri=mlflow_server,
        data={"dataset_dir": folder},
        mlflow={
            "tracking_uri": mlflow_server,
            "registered_model": f"shift-{key}",
            "experiment": f"shift-{key}",
        },
    )
    clean = ingest_months(["2013-01", "2013-02"], settings)
    _doubled_departure_delays(jan_feb).to_csv(folder / "flights.csv", index=False)
    planted = ingest_months(["2013-01"], settings)

    # Without the plant nothing is flagged (February judged against January).
    assert check_data_shift(_job(settings, clean.revision), settings).status == "ok"

    job = _job(settings, planted.revision)
    with pytest.raises(TrainingError) as caught:
        fit_and_log(job, settings)
    message = str(caught.value)
    assert message.startswith("training blocked")
    assert "flights/2013-01.dep_delay" in message
    assert "DRIFTLOOP_DATA__PROFILE_BLOCK=off" in message
    assert not job.checkpoint_dir.exists()  # no resume can step around the check

    client = registry.get_client(settings)
    experiment = client.get_experiment_by_name(settings.mlflow.experiment)
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FAILED"
    tags = run.data.tags
    assert tags["driftloop.data_shift"] == "flagged"
    assert tags["driftloop.data_shift_blocking"] == "true"
    assert tags["driftloop.data_shift_reference"] == clean.revision
    assert "flights/2013-01.dep_delay" in tags["driftloop.data_shift_findings"]
    assert run.data.metrics["data_shift_max_psi"] > settings.data.profile_psi_limit
    assert "epochs_trained" not in run.data.metrics  # stopped before training
    local = registry.download_run_artifact(
        run.info.run_id, "data_profile/shift.json", tmp_path / "dl", settings
    )
    recorded = json.loads(local.read_text())
    shifted = next(p for p in recorded["partitions"] if p["partition"] == "flights/2013-01")
    assert shifted["limits"]["psi"] == settings.data.profile_psi_limit
    assert recorded["blocking_findings"] == recorded["findings"]

    # profile_block=off: the same shift is flagged, and training would go on.
    lenient = settings.model_copy(
        update={"data": settings.data.model_copy(update={"profile_block": "off"})}
    )
    report = check_data_shift(job, lenient)
    assert report.flagged
    assert not report.blocking
