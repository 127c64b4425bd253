"""The demo's first steps (ingest, features, the first champion, the months' traffic) run in a
child process, so the demo's own process never holds DVC, torch or a Feast retrieval: real
MLflow and Prefect servers, the real flows, the real data, on 127.0.0.1."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from child_env import settings_env

from driftloop.errors import DriftloopError

pytestmark = [pytest.mark.integration]


def test_the_demo_process_imports_neither_torch_nor_dvc() -> None:
    """What the demo process imports (in a fresh interpreter): the first steps' heavy libraries
    must stay in their child. Before, importing the demo imported torch (via flows.train)."""
    probe = (
        "import sys, driftloop.embedded.demo\n"
        "print(' '.join(m for m in ('torch', 'dvc', 'captum') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == "", f"imported by the demo process: {out.stdout.strip()}"


@pytest.fixture
def demo_env(
    mlflow_server: str, prefect_server: str, make_settings: Any, monkeypatch: pytest.MonkeyPatch
) -> Any:
    """Settings of a small first champion, in the environment the child inherits (as the
    demo's environment is)."""
    key = uuid.uuid4().hex[:6]
    settings = make_settings(
        mlflow_uri=mlflow_server,
        prefect_url=prefect_server,
        mlflow={"registered_model": f"first-steps-{key}", "experiment": f"first-steps-{key}"},
        training={"epochs": 1, "batch_size": 2048},
    )
    for name, value in settings_env(settings).items():
        monkeypatch.setenv(name, value)
    return settings


@pytest.mark.slow
def test_first_steps_train_the_champion_and_write_the_traffic_in_a_child(
    demo_env: Any, tmp_path: Path
) -> None:
    from mlflow.tracking import MlflowClient

    from driftloop.embedded.demo.first_steps import run_first_steps
    from driftloop.embedded.demo.traffic import read_month_frame
    from driftloop.features import build_training_frame

    settings = demo_env
    lines: list[str] = []
    frames = tmp_path / "frames"
    out = run_first_steps("2013-03", ("2013-01", "2013-01"), "2013-03", frames, lines.append)

    # the train flow's summary comes back: the version is registered in MLflow
    version = MlflowClient(settings.mlflow.uri).get_model_version(
        settings.mlflow.registered_model, str(out.summary["version"])
    )
    assert version.run_id == out.summary["run_id"]
    assert set(out.seconds) == {"ingest", "features", "train", "traffic rows"}
    assert all(s > 0 for s in out.seconds.values())
    assert "[3/5] train the first champion on 2013-01..2013-01" in lines
    # the traffic month, as this process would have built it from Feast's offline store
    assert sorted(p.name for p in frames.iterdir()) == ["2013-03.parquet"]
    pd.testing.assert_frame_equal(
        read_month_frame(frames, "2013-03"), build_training_frame(["2013-03"], settings)
    )


@pytest.mark.slow
def test_a_failing_first_step_is_one_readable_error(demo_env: Any, tmp_path: Path) -> None:
    from driftloop.embedded.demo.first_steps import run_first_steps

    frames = tmp_path / "frames"
    with pytest.raises(DriftloopError) as failed:
        run_first_steps("2014-02", ("2013-01", "2013-01"), "2013-03", frames, lambda _: None)
    message = str(failed.value)
    assert message.startswith("the demo's first steps (ingest, features, train) failed: ")
    assert message.endswith("month 2014-01 is outside the data set (2013-01..2013-12)")
    assert "\n" not in message
    assert not frames.exists()  # it failed before any traffic was written
