"""Serving runs a driftloop version on NumPy (driftloop.inference), not on torch, and answers
what the torch pyfunc answers. One real trained model is logged twice to the real MLflow
server: as training saves it now (``weights.npz`` beside ``weights.pt``) and as versions were
saved before ``weights.npz`` existed; a real ``python -m serving`` (uvicorn on 127.0.0.1) serves
the first as champion and the second as challenger. Both score and explain the same rows alike;
metadata says which runtime each version has; and a server holding only NumPy versions never
maps torch into its memory."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import orjson
import pandas as pd
import pytest
from datasets import model_input_frame

from driftloop.embedded.services import free_port
from driftloop.inference.model import NUMPY_WEIGHTS_FILE
from driftloop.registry.integrity import register_verified_version
from driftloop.registry.promotion import assign_alias_after_gate
from driftloop.schema import MODEL_INPUT_COLUMNS
from driftloop.settings import Settings, use_settings
from driftloop.training.bundle import ModelBundle
from driftloop.training.pyfunc import log_model
from driftloop.training.trainer import TrainParams, fit
from serving.codec import request_body
from serving.process import ServerProcess

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Served:
    settings: Settings
    client: httpx.Client
    proc: ServerProcess
    rows: pd.DataFrame
    numpy_version: str
    pyfunc_version: str
    torch_with_numpy_only: bool  # torch mapped while only the NumPy champion was loaded

    @property
    def name(self) -> str:
        return self.settings.mlflow.registered_model


def _log(bundle: ModelBundle, example: pd.DataFrame, settings: Settings, old: bool) -> str:
    """Log and register ``bundle``; ``old``: without weights.npz, as before it was saved."""
    import mlflow

    save = ModelBundle.save

    def save_without_npz(self: ModelBundle, folder: Path) -> Path:
        out = save(self, folder)
        (out / NUMPY_WEIGHTS_FILE).unlink()
        return out

    with pytest.MonkeyPatch.context() as patch:
        if old:
            patch.setattr(ModelBundle, "save", save_without_npz)
        with mlflow.start_run() as run:
            info = log_model(bundle, example)
    return register_verified_version(info.model_uri, run.info.run_id, {}, settings).version


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, mlflow_server: str) -> Iterator[Served]:
    import mlflow

    frame = model_input_frame(["2013-01"], n=4000)
    result = fit(frame.iloc[:3000], frame.iloc[3000:], TrainParams(epochs=2, batch_size=256))
    bundle = ModelBundle(result.model, result.preprocessor).calibrate(frame.iloc[3000:])
    settings = Settings(
        state_dir=tmp_path_factory.mktemp("serving-numpy"),
        log_level="WARNING",
        mlflow={
            "tracking_uri": mlflow_server,
            "registered_model": f"numpy-{uuid.uuid4().hex[:6]}",
            "experiment": "serving-tests",  # serving trusts runs of its experiment only
        },
        serving={"port": free_port(), "reconcile_interval_s": 0.3},
    )
    use_settings(settings)
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(mlflow_server)
    mlflow.set_experiment("serving-tests")
    try:
        new = _log(bundle, frame.iloc[:5], settings, old=False)
        old = _log(bundle, frame.iloc[:5], settings, old=True)
    finally:
        mlflow.set_tracking_uri(previous)
    assign_alias_after_gate(new, "champion", "test fixture", settings=settings)
    with ServerProcess(settings) as proc, httpx.Client(base_url=proc.url, timeout=60) as client:
        torch_before_challenger = _maps_torch(proc)
        assign_alias_after_gate(old, "challenger", "test fixture", settings=settings)
        _wait_loaded(client, settings.mlflow.registered_model, old)
        rows = frame.iloc[3000:3300].reset_index(drop=True)
        yield Served(settings, client, proc, rows, new, old, torch_before_challenger)
    use_settings(None)


def _maps_torch(proc: ServerProcess) -> bool:
    """Whether the serving process has torch's shared library in its memory map."""
    assert proc.proc is not None
    maps = Path(f"/proc/{proc.proc.pid}/maps").read_text()
    return "libtorch" in maps


def _wait_loaded(client: httpx.Client, name: str, version: str) -> None:
    from polling import wait_for

    wait_for(
        lambda: version in client.get(f"/v2/models/{name}").json()["versions"],
        timeout=90,
        what=f"version {version} loaded",
    )


def _infer(served: Served, version: str, rows: pd.DataFrame, **params: object) -> dict:
    body = request_body(rows[MODEL_INPUT_COLUMNS], f"np-{uuid.uuid4().hex[:8]}", params or None)
    answer = served.client.post(
        f"/v2/models/{served.name}/versions/{version}/infer",
        content=orjson.dumps(body),
        headers={"Content-Type": "application/json"},
    )
    assert answer.status_code == 200, answer.text
    return {o["name"]: o for o in answer.json()["outputs"]}


def test_a_server_of_numpy_versions_never_loads_torch(served: Served) -> None:
    assert not served.torch_with_numpy_only
    assert _maps_torch(served.proc)  # the check sees torch once the old version's pyfunc loads


def test_metadata_names_the_runtime_of_each_version(served: Served) -> None:
    meta = served.client.get(f"/v2/models/{served.name}").json()
    runtimes = meta["parameters"]["runtimes"]
    assert runtimes == {served.numpy_version: "numpy", served.pyfunc_version: "pyfunc"}
    one = served.client.get(f"/v2/models/{served.name}/versions/{served.numpy_version}").json()
    assert one["parameters"]["runtimes"] == {served.numpy_version: "numpy"}


def test_numpy_and_torch_versions_of_one_model_answer_alike(served: Served) -> None:
    for rows in (served.rows.iloc[:1], served.rows):
        by_numpy = _infer(served, served.numpy_version, rows)
        by_torch = _infer(served, served.pyfunc_version, rows)
        p_numpy = np.asarray(by_numpy["late_probability"]["data"])
        p_torch = np.asarray(by_torch["late_probability"]["data"])
        assert p_numpy.shape == (len(rows),)
        np.testing.assert_allclose(p_numpy, p_torch, rtol=0, atol=2e-6)
    assert p_numpy.std() > 0.05  # on 300 rows: a model that tells flights apart, not a constant


def test_numpy_and_captum_explanations_agree_through_the_api(served: Served) -> None:
    rows = served.rows.iloc[:20]
    by_numpy = _infer(served, served.numpy_version, rows, explain=True)["attributions"]
    by_torch = _infer(served, served.pyfunc_version, rows, explain=True)["attributions"]
    assert by_numpy["shape"] == by_torch["shape"] == [20, len(MODEL_INPUT_COLUMNS)]
    np.testing.assert_allclose(by_numpy["data"], by_torch["data"], rtol=0, atol=1e-6)
    assert by_numpy["parameters"]["baseline_probability"] == pytest.approx(
        by_torch["parameters"]["baseline_probability"], abs=1e-6
    )
