"""Batch scoring on the real stack: DVC partitions, Feast point-in-time features, a champion
trained and registered on the real MLflow server, the ``batch-score`` flow on the real Prefect
server, and a real ``python -m serving`` (uvicorn on 127.0.0.1) answering the same rows."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from driftloop.data.store import load_partitions
from driftloop.embedded.services import free_port
from driftloop.registry.client import get_version
from driftloop.schema import FLIGHT_KEY, LABEL, MODEL_INPUT_COLUMNS
from driftloop.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

#: The month scored (ingested by the ``trained`` fixture; the champion's holdout).
SCORED = "2013-02"

#: |batch - API| allowed per probability: float32 rounding of the net (values in [0, 1]).
FLOAT32_TOLERANCE = 1e-6
#: Rows per API request (the API's row cap is far above; several requests, like a client).
REQUEST_ROWS = 200


def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    from driftloop.cli import main

    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def _api_answers(url: str, rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, set[str], set[str]]:
    """(late_probability, is_late, answering versions, lineage ids) of ``rows`` sent as
    feature rows."""
    from serving import codec

    probs, labels, versions, lineage = [], [], set(), set()
    with httpx.Client(timeout=60) as client:
        for start in range(0, len(rows), REQUEST_ROWS):
            chunk = rows.iloc[start : start + REQUEST_ROWS][MODEL_INPUT_COLUMNS]
            body = codec.request_body(
                chunk, request_id=f"batch-test-{start}", parameters={"content_type": "features"}
            )
            resp = client.post(url, json=body)
            assert resp.status_code == 200, resp.text
            answer = resp.json()
            versions.add(answer["model_version"])
            lineage.add(answer["parameters"]["lineage_id"])
            outputs = {o["name"]: o["data"] for o in answer["outputs"]}
            probs.extend(outputs["late_probability"])
            labels.extend(outputs["is_late"])
    return np.asarray(probs, dtype=np.float64), np.asarray(labels), versions, lineage


def test_batch_scores_a_month_and_equals_the_api_on_the_same_rows(
    trained: Any,
    batch_settings: Callable[..., Settings],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from mlflow import MlflowClient

    from serving.process import ServerProcess

    settings = batch_settings(serving={"port": free_port()})
    out = tmp_path / "may.parquet"
    code, stdout, err = _cli(
        ["batch-score", "--month", SCORED, "--out", str(out), "--json"], capsys
    )
    assert code == 0, err
    result = json.loads(stdout)
    assert result["output"] == str(out)
    assert result["version"] == trained.version  # the champion
    scored = pd.read_parquet(out)

    # Every flight of the month, cancelled ones too (their outcome is null).
    flights = load_partitions("flights", [SCORED], settings=settings)
    assert result["rows"] == len(scored) == len(flights)
    assert set(scored[FLIGHT_KEY]) == set(flights[FLIGHT_KEY])
    cancelled = int(flights[LABEL].isna().sum())
    assert cancelled > 0
    assert int(scored["actual_is_late"].isna().sum()) == cancelled
    assert result["labelled"] == len(flights) - cancelled
    # At the version's served threshold (the trained one, tag driftloop.threshold).
    info = get_version(trained.version, settings, trained.model)
    threshold = float(info.tags["driftloop.threshold"])
    assert result["threshold_source"] == "version"
    assert (scored["decision_threshold"] == threshold).all()
    assert (scored["is_late"] == (scored["late_probability"] >= threshold)).all()
    assert scored["lineage_id"].nunique() == 1
    assert scored["lineage_id"].iloc[0] == result["lineage_id"]
    assert (scored["model_version"] == trained.version).all()

    # The MLflow run: params, rows/s, the parquet itself (small).
    run = MlflowClient(settings.mlflow.uri).get_run(result["run_id"])
    assert run.data.params["version"] == trained.version
    assert run.data.params["input"] == SCORED
    assert run.data.params["rows"] == str(len(scored))
    assert run.data.metrics["rows_per_s"] > 0
    assert run.data.tags["driftloop.activity"] == "batch_score"
    assert result["artifact"] == f"batch/{out.name}"
    listed = {
        a.path for a in MlflowClient(settings.mlflow.uri).list_artifacts(run.info.run_id, "batch")
    }
    assert {f"batch/{out.name}", "batch/output.json"} <= listed

    # The API answers the same rows with the same probabilities and decisions: a sample with
    # rows whose plane is unknown (null features) and cancelled flights.
    rng = np.random.default_rng(0)
    unknown_plane = scored.index[scored["plane_year"].isna()][:100]
    no_outcome = scored.index[scored["actual_is_late"].isna()][:100]
    drawn = rng.choice(len(scored), size=800, replace=False)
    picked = scored.loc[sorted({*unknown_plane, *no_outcome, *drawn})]
    assert picked["plane_year"].isna().any()
    with ServerProcess(settings) as server:
        url = f"{server.url}/v2/models/{trained.model}/infer"
        probs, labels, versions, lineage = _api_answers(url, picked)
        # the batch's lineage id is the API's, and the API resolves it
        resolved = httpx.get(
            f"{server.url}/v2/models/{trained.model}/lineage/{result['lineage_id']}", timeout=60
        )
    assert versions == {trained.version}
    assert lineage == {result["lineage_id"]}
    assert resolved.status_code == 200, resolved.text
    assert resolved.json()["model_version"] == trained.version
    # Equal to float32 precision: the net computes in float32, and a matrix product over 200
    # rows rounds some sums differently from one over the whole month (seen: 3 of 1,000 rows
    # differ by 2e-8, the rest are bit-identical).
    expected = picked["late_probability"].to_numpy()
    np.testing.assert_allclose(probs, expected, rtol=0, atol=FLOAT32_TOLERANCE)
    clear = np.abs(expected - threshold) > FLOAT32_TOLERANCE  # not on the threshold's edge
    assert clear.mean() > 0.99
    assert (labels[clear] == picked["is_late"].to_numpy()[clear]).all()


def test_flow_scores_a_flights_file_with_lineage_ids_and_an_mlflow_run(
    trained: Any,
    batch_settings: Callable[..., Settings],
    prefect_server: str,
    tmp_path: Path,
) -> None:
    from mlflow import MlflowClient
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from driftloop.data.capture import version_lineage_id
    from driftloop.loop.batch import REQUIRED_COLUMNS
    from flows.batch_score import batch_score_flow

    settings = batch_settings(prefect_url=prefect_server)
    flights = load_partitions("flights", [SCORED], settings=settings)
    labelled = flights[flights[LABEL].notna()].head(300)
    unknown = flights[flights[LABEL].isna()].head(20)
    path = tmp_path / f"flights-{uuid.uuid4().hex[:6]}.parquet"
    pd.concat([labelled, unknown])[[*REQUIRED_COLUMNS, LABEL]].to_parquet(path)
    folder = tmp_path / "scored"
    folder.mkdir()

    out = batch_score_flow(input_path=str(path), version=trained.version, out=str(folder))

    written = pd.read_parquet(out["output"])
    assert Path(out["output"]).parent == folder
    assert len(written) == out["rows"] == 320
    assert set(written[FLIGHT_KEY]) == set(labelled[FLIGHT_KEY]) | set(unknown[FLIGHT_KEY])
    assert int(written["actual_is_late"].isna().sum()) == 20
    expected = version_lineage_id(get_version(trained.version, settings, trained.model))
    assert set(written["lineage_id"]) == {expected}
    assert set(written["model_version"]) == {trained.version}

    client = MlflowClient(settings.mlflow.uri)
    run = client.get_run(out["run_id"])
    assert run.data.params["version"] == trained.version
    assert run.data.params["input"] == f"file:{path}"
    assert run.data.params["rows"] == "320"
    assert run.data.params["lineage_id"] == expected
    assert run.data.metrics["rows_per_s"] > 0
    logged = client.download_artifacts(run.info.run_id, out["artifact"], str(tmp_path))
    pd.testing.assert_frame_equal(pd.read_parquet(logged), written)

    with get_client(sync_client=True) as prefect:
        artifacts = prefect.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["batch-score"]))
        )
    assert any(expected in str(a.data) for a in artifacts)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--month", "2013-07"], "error: month 2013-07 is not ingested (ingested months: "),
        (["--month", "2013-13"], "error: unknown month '2013-13'"),
        (["--month", SCORED, "--version", "999"], "error: model batch-"),
        (["--month", SCORED, "--version", "latest"], "error: model version must be a number"),
        (["--month", SCORED, "--input", "x.parquet"], "error: give exactly one of a month"),
        ([], "error: give exactly one of a month"),
        (
            ["--input", "{missing_columns}"],
            "error: {missing_columns} lacks column(s) dest, distance",
        ),
        (["--input", "{not_parquet}"], "error: {not_parquet} is not a readable parquet file"),
        (["--input", "{absent}"], "error: input file {absent} does not exist"),
    ],
)
def test_bad_input_exits_1_with_one_line(
    batch_settings: Callable[..., Settings],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    batch_settings()
    files = {
        "missing_columns": tmp_path / "flights.parquet",
        "not_parquet": tmp_path / "flights.csv",
        "absent": tmp_path / "absent.parquet",
    }
    pd.DataFrame(
        {
            "flight_id": ["a"],
            "carrier": ["UA"],
            "origin": ["JFK"],
            "tailnum": ["N1"],
            "scheduled_departure": ["2013-02-01T10:00:00Z"],
        }
    ).to_parquet(files["missing_columns"])
    files["not_parquet"].write_text("flight_id,carrier\na,UA\n")
    names = {k: str(v) for k, v in files.items()}
    out = tmp_path / "out.parquet"
    argv = ["batch-score", *(a.format(**names) for a in args), "--out", str(out)]
    code, stdout, err = _cli(argv, capsys)
    assert code == 1, (stdout, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(message.format(**names)), lines[0]
    if "--version" in args and "999" in args:
        assert "has no version 999" in lines[0]
    assert not out.exists()


def test_prefect_yaml_declares_the_batch_score_deployment_on_the_flow() -> None:
    """``driftloop deploy`` (``prefect deploy --all``) registers what prefect.yaml declares: the
    entry must load the flow and its parameters must be the flow's."""
    import yaml
    from prefect.flows import load_flow_from_entrypoint

    from driftloop.settings import project_root

    declared = yaml.safe_load((project_root() / "prefect.yaml").read_text())["deployments"]
    entry = next(d for d in declared if d["name"] == "batch-score")
    flow = load_flow_from_entrypoint(str(project_root() / entry["entrypoint"]))
    assert flow.name == "batch-score"
    assert set(entry.get("parameters", {})) <= set(flow.parameters.properties)
    assert entry["work_pool"]["name"] == "{{ $DRIFTLOOP_PREFECT__WORK_POOL }}"
