"""Lineage with each prediction, end to end on a real ``python -m serving`` (uvicorn on
127.0.0.1) and the real MLflow server: every response carries the answering version's lineage
id, ``GET /v2/models/{name}/lineage/{id}`` resolves it from the registry, the capture stores it,
and ``driftloop lineage --prediction <request id>`` finds the request in the real capture files
and resolves it. Malformed ids are 400, unknown ones 404, always as ``{"error": ...}``."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest
from polling import wait_for

from driftloop.cli import main
from driftloop.data.capture import read_predictions
from driftloop.embedded.services import free_port
from driftloop.registry.client import get_version, set_version_tags
from driftloop.registry.integrity import register_verified_version
from driftloop.registry.json_tags import offload_json_tags
from driftloop.registry.promotion import assign_alias_after_gate
from driftloop.settings import Settings, use_settings
from serving.examples import features_request
from serving.process import ServerProcess

pytestmark = pytest.mark.integration

TOKENS = {"admin": "admin-secret", "predict": "predict-secret"}
PREDICT = {"Authorization": f"Bearer {TOKENS['predict']}", "Content-Type": "application/json"}
LINEAGE_TAGS = {
    "driftloop.data_rev": "3f1c0d9e8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e",
    "driftloop.feature_service": "delay_model_v1",
    "driftloop.git_commit": "e1c4ee1a2b3c4d5e6f708192a3b4c5d6e7f80912",
}
#: Large enough that registration stores it as a run artifact behind a pointer tag, as training
#: does with a year of partition hashes (the lineage must read through the pointer).
HASHES = {f"flights_2013-{m:02d}": f"{m:02d}" * 16 for m in range(1, 13)}


@dataclass(frozen=True)
class Served:
    settings: Settings
    url: str
    name: str
    version: str
    run_id: str


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, mlflow_server: str, logged_models: dict[str, str]
) -> Iterator[Served]:
    """A champion with the lineage tags training writes, served with auth on (one server for
    the module: starting one costs seconds)."""
    settings = Settings(
        state_dir=tmp_path_factory.mktemp("serving-lineage"),
        log_level="WARNING",
        mlflow={
            "tracking_uri": mlflow_server,
            "registered_model": f"lineage-{uuid.uuid4().hex[:6]}",
            "experiment": "serving-tests",  # where the fake models are logged (conftest)
        },
        serving={
            "port": free_port(),
            "reconcile_interval_s": 0.3,
            "capture_flush_s": 0.1,
            "auth": {
                "enabled": True,
                "admin_tokens": [TOKENS["admin"]],
                "predict_tokens": [TOKENS["predict"]],
            },
        },
    )
    version = register_verified_version(logged_models["good"], None, {}, settings).version
    run_id = get_version(version, settings).run_id
    assert run_id
    tags = {**LINEAGE_TAGS, "driftloop.data_hashes": json.dumps(HASHES)}
    stored = offload_json_tags(run_id, tags, settings)
    assert stored["driftloop.data_hashes"].startswith(f"runs:/{run_id}/")
    set_version_tags(version, stored, settings)
    assign_alias_after_gate(version, "champion", "test fixture", settings=settings)
    with ServerProcess(settings) as proc:
        yield Served(settings, proc.url, settings.mlflow.registered_model, version, run_id)


def _infer(s: Served, request_id: str) -> dict[str, Any]:
    body = orjson.dumps(features_request(2, request_id=request_id))
    r = httpx.post(f"{s.url}/v2/models/{s.name}/infer", content=body, headers=PREDICT)
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


def _lineage(s: Served, lineage_id: str, name: str | None = None) -> httpx.Response:
    return httpx.get(
        f"{s.url}/v2/models/{name or s.name}/lineage/{lineage_id}",
        headers={"Authorization": PREDICT["Authorization"]},
    )


def test_every_response_carries_a_stable_lineage_id_that_resolves(served: Served) -> None:
    first = _infer(served, f"a-{uuid.uuid4().hex[:6]}")["parameters"]["lineage_id"]
    second = _infer(served, f"b-{uuid.uuid4().hex[:6]}")["parameters"]["lineage_id"]
    assert first == second  # one id per version, not per request
    version, *digests = first.split(".")
    assert version == served.version
    assert len(digests) == 3
    assert all(len(d) == 8 and int(d, 16) >= 0 for d in digests)

    r = _lineage(served, first)
    assert r.status_code == 200, r.text
    found = r.json()
    assert found["lineage_id"] == first
    assert (found["model_name"], found["model_version"]) == (served.name, served.version)
    assert found["run_id"] == served.run_id
    assert found["data_rev"] == LINEAGE_TAGS["driftloop.data_rev"]
    assert found["feature_service"] == "delay_model_v1"
    assert found["git_commit"] == LINEAGE_TAGS["driftloop.git_commit"]
    assert found["data_hashes"] == HASHES  # read through the pointer tag
    assert found["aliases"] == ["champion"]
    mlflow = served.settings.mlflow.uri
    assert found["links"]["model_version"] == (
        f"{mlflow}/#/models/{served.name}/versions/{served.version}"
    )
    assert found["links"]["run"] == f"{mlflow}/#/runs/{served.run_id}"
    assert httpx.get(found["links"]["model_version"].split("#")[0]).status_code == 200


def test_a_different_lineage_gets_a_different_id(served: Served) -> None:
    """The digests cover the data revision: another revision is another id (and the old id
    no longer resolves for the version)."""
    before = _infer(served, "x")["parameters"]["lineage_id"]
    set_version_tags(served.version, {"driftloop.data_rev": "0" * 40}, served.settings)
    try:
        r = _lineage(served, before)
    finally:
        set_version_tags(served.version, LINEAGE_TAGS, served.settings)
    assert r.status_code == 404
    assert "another run, data revision or feature service" in r.json()["error"]
    assert _lineage(served, before).status_code == 200


@pytest.mark.parametrize(
    ("lineage_id", "status", "words"),
    [
        ("not-an-id", 400, "malformed lineage id"),
        ("3.ABCDEF01.00000000.00000000", 400, "malformed lineage id"),
        ("1.00000000.00000000", 400, "malformed lineage id"),
        ("999.00000000.00000000.00000000", 404, "has no version 999"),
    ],
)
def test_malformed_ids_are_400_and_unknown_ones_404(
    served: Served, lineage_id: str, status: int, words: str
) -> None:
    r = _lineage(served, lineage_id)
    assert r.status_code == status, r.text
    assert words in r.json()["error"]


def test_a_forged_id_of_a_real_version_and_another_model_are_404(served: Served) -> None:
    forged = f"{served.version}.00000000.00000000.00000000"
    r = _lineage(served, forged)
    assert r.status_code == 404
    assert f"unknown lineage id {forged!r}" in r.json()["error"]
    real = _infer(served, "y")["parameters"]["lineage_id"]
    other = _lineage(served, real, name="some-other-model")
    assert other.status_code == 404
    assert "unknown model" in other.json()["error"]
    anonymous = httpx.get(f"{served.url}/v2/models/{served.name}/lineage/{real}")
    assert anonymous.status_code == 401


def test_capture_stores_it_and_the_cli_resolves_a_request_id(
    served: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    use_settings(served.settings)  # what the CLI reads (reset after each test)
    rid = f"cli-{uuid.uuid4().hex[:8]}"
    lineage_id = _infer(served, rid)["parameters"]["lineage_id"]

    def captured() -> bool:
        log = read_predictions(served.settings, with_labels=False)
        return bool((log["request_id"] == rid).any())

    wait_for(captured, timeout=15)
    log = read_predictions(served.settings, with_labels=False)
    assert set(log.loc[log["request_id"] == rid, "lineage_id"]) == {lineage_id}

    capsys.readouterr()
    main(["lineage", "--prediction", rid, "--json"])
    found = json.loads(capsys.readouterr().out)
    assert found["request_id"] == rid
    assert found["lineage_id"] == lineage_id
    assert found["model_version"] == served.version
    assert found["run_id"] == served.run_id
    assert found["git_commit"] == LINEAGE_TAGS["driftloop.git_commit"]
    assert found["synthetic"] is None

    main(["lineage", "--id", lineage_id])
    text = capsys.readouterr().out
    assert f"model_version {served.version}" in " ".join(text.split())
    assert served.run_id in text


def test_the_cli_says_in_one_line_when_a_request_id_is_unknown(
    served: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    use_settings(served.settings)
    with pytest.raises(SystemExit) as exit_:
        main(["lineage", "--prediction", "never-sent"])
    assert exit_.value.code == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: no captured prediction has request id 'never-sent'")
    assert "\n" not in err
    with pytest.raises(SystemExit) as exit_:
        main(["lineage", "--id", "nonsense"])
    assert exit_.value.code == 1
    assert "malformed lineage id 'nonsense'" in capsys.readouterr().err
