"""An SBOM logged as a build artifact: a run ``build <image>`` on a real MLflow server holding
the file under ``sbom/`` and the image and component count as tags."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient

from driftloop.errors import InvalidInputError
from driftloop.supply import sbom
from driftloop.supply.artifacts import log_sbom

ROOT = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.integration


def test_log_sbom_creates_the_build_run(
    mlflow_server: str, make_settings: Any, tmp_path: Path
) -> None:
    settings = make_settings(mlflow_uri=mlflow_server, mlflow={"experiment": "builds"})
    path = tmp_path / "driftloop-serving-dev.cdx.json"
    sbom.write(sbom.build(name="driftloop-serving", version="dev"), str(path))

    logged = log_sbom(path, "driftloop-serving:dev", settings)

    client = MlflowClient(tracking_uri=mlflow_server)
    run = client.get_run(logged.run_id)
    assert run.info.run_name == "build driftloop-serving:dev"
    assert run.data.tags["driftloop.build.image"] == "driftloop-serving:dev"
    assert run.data.tags["driftloop.sbom.components"] == str(logged.components)
    assert logged.components == len(json.loads(path.read_text())["components"]) > 100
    assert [a.path for a in client.list_artifacts(logged.run_id, "sbom")] == [
        "sbom/driftloop-serving-dev.cdx.json"
    ]
    local = client.download_artifacts(logged.run_id, logged.artifact, str(tmp_path / "dl"))
    assert Path(local).read_text() == path.read_text()


def test_log_sbom_refuses_a_file_that_is_not_cyclonedx(
    mlflow_server: str, make_settings: Any, tmp_path: Path
) -> None:
    settings = make_settings(mlflow_uri=mlflow_server)
    path = tmp_path / "x.json"
    path.write_text(json.dumps({"spdxVersion": "SPDX-2.3"}))
    with pytest.raises(InvalidInputError, match="not a CycloneDX document"):
        log_sbom(path, "x:1", settings)


def test_cli_sbom_mlflow(mlflow_server: str, tmp_path: Path) -> None:
    target = tmp_path / "venv.cdx.json"
    env = {"DRIFTLOOP_MLFLOW__TRACKING_URI": mlflow_server, "DRIFTLOOP_STATE_DIR": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-m", "driftloop.supply", "sbom", "--out", str(target), "--mlflow"],
        capture_output=True, text=True, cwd=ROOT, timeout=300, check=False,
        env={**os.environ, **env},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "to MLflow run 'build driftloop-venv'" in out.stdout


def test_cli_mlflow_unreachable_is_one_line(tmp_path: Path) -> None:
    env = {
        "DRIFTLOOP_MLFLOW__TRACKING_URI": "http://127.0.0.1:1",
        "DRIFTLOOP_STATE_DIR": str(tmp_path),
    }
    path = tmp_path / "venv.cdx.json"
    sbom.write(sbom.build(name="v"), str(path))
    out = subprocess.run(
        [sys.executable, "-m", "driftloop.supply", "log-sbom", str(path), "--image", "v:1"],
        capture_output=True, text=True, cwd=ROOT, timeout=300, check=False,
        env={**os.environ, **env},
    )  # fmt: skip
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [
        "error: MLflow is unreachable at http://127.0.0.1:1 (ConnectError): start it with "
        "`driftloop up` or set DRIFTLOOP_MLFLOW__TRACKING_URI"
    ]
