"""Models are verified before they run, against a real MLflow server: registration records the
artifact's content hash as a parameter of the training run (and a readable version tag); the
loader downloads, hashes and refuses a version whose artifact was changed afterwards, or that has
no recorded hash, before anything of it is unpickled or imported."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest

from driftloop.errors import ModelIntegrityError
from driftloop.registry.client import get_client, get_run_data, get_version, register_version
from driftloop.registry.integrity import (
    DIGEST_PARAM,
    DIGEST_TAG,
    artifact_digest,
    expected_digest,
    load_verified_pyfunc,
    record_digest,
    register_verified_version,
    verified_model_dir,
)
from driftloop.settings import Settings

pytestmark = pytest.mark.integration

FAKE_MODEL = Path(__file__).parents[1] / "serving" / "fake_model.py"
ROW = pd.DataFrame([{"distance": 1000.0, "dep_hour": 12.0}])


@pytest.fixture
def settings(make_settings: Callable[..., Settings], mlflow_server: str) -> Settings:
    key = uuid.uuid4().hex[:8]
    return make_settings(
        mlflow_uri=mlflow_server,
        mlflow={"registered_model": f"integrity-{key}", "experiment": f"integrity-{key}"},
    )


@pytest.fixture
def log_model(settings: Settings) -> Iterator[Callable[[], tuple[str, str]]]:
    """``log_model()`` -> ``(models:/m-... uri, run id)``: a tiny real pyfunc (models from
    code), logged in its own run. The global tracking URI is restored afterwards."""
    import mlflow

    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(settings.mlflow.uri)
    mlflow.set_experiment(settings.mlflow.experiment)

    def log() -> tuple[str, str]:
        with mlflow.start_run() as run:
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=str(FAKE_MODEL),
                model_config={"bias": -1.0},
                pip_requirements=["mlflow"],
            )
        return str(info.model_uri), run.info.run_id

    try:
        yield log
    finally:
        mlflow.set_tracking_uri(previous)


def tamper(settings: Settings, model_uri: str, tmp_path: Path, marker: Path) -> None:
    """Overwrite the model's code in its artifact store (what anyone with write access to
    MLflow could do): the new code would create ``marker`` when imported."""
    evil = tmp_path / "upload" / "fake_model.py"
    evil.parent.mkdir(parents=True, exist_ok=True)
    evil.write_text(
        f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n"
        + FAKE_MODEL.read_text()
    )
    model_id = model_uri.removeprefix("models:/")
    get_client(settings).log_model_artifact(model_id, str(evil))


def test_registration_records_the_hash_on_the_run_and_the_version(
    settings: Settings, log_model: Callable[[], tuple[str, str]], tmp_path: Path
) -> None:
    uri, run_id = log_model()
    info = register_verified_version(uri, run_id, {"kind": "good"}, settings)
    params, _, _ = get_run_data(run_id, settings)
    model_id = uri.removeprefix("models:/")
    digest = params[f"{DIGEST_PARAM}/{model_id}"]
    assert len(digest) == 64
    assert get_version(info.version, settings).tags[DIGEST_TAG] == digest
    assert expected_digest(settings.mlflow.registered_model, info.version, settings) == digest
    local = verified_model_dir(
        settings.mlflow.registered_model, info.version, settings, tmp_path / "copy"
    )
    assert artifact_digest(local) == digest
    model = load_verified_pyfunc(f"models:/{settings.mlflow.registered_model}/{info.version}")
    assert 0.0 < float(model.unwrap_python_model().predict_proba(ROW)[0]) < 1.0
    # Registering the same artifact again is fine (the parameter is immutable, the hash equal).
    again = register_verified_version(uri, run_id, {}, settings)
    assert get_version(again.version, settings).tags[DIGEST_TAG] == digest


def test_a_tampered_artifact_is_refused_before_its_code_runs(
    settings: Settings, log_model: Callable[[], tuple[str, str]], tmp_path: Path
) -> None:
    from driftloop.training.pyfunc import load_python_model

    uri, run_id = log_model()
    version = register_verified_version(uri, run_id, {}, settings).version
    marker = tmp_path / "tampered-code-ran"
    tamper(settings, uri, tmp_path, marker)
    name = settings.mlflow.registered_model
    with pytest.raises(ModelIntegrityError, match="changed after registration"):
        verified_model_dir(name, version, settings)
    with pytest.raises(ModelIntegrityError):
        load_verified_pyfunc(f"models:/{name}/{version}", settings)
    with pytest.raises(ModelIntegrityError):
        load_python_model(f"models:/{name}/{version}", settings)  # the batch path
    with pytest.raises(ModelIntegrityError):
        load_python_model(uri, settings)  # the training run's logged model itself
    with pytest.raises(ModelIntegrityError, match="was changed"):
        register_verified_version(uri, run_id, {}, settings)  # nor registered again
    assert not marker.exists()


def test_a_version_without_a_recorded_hash_is_refused(
    settings: Settings, log_model: Callable[[], tuple[str, str]]
) -> None:
    uri, run_id = log_model()
    version = register_version(uri, run_id, {}, settings).version  # the pre-hash way
    with pytest.raises(ModelIntegrityError, match="no recorded artifact hash"):
        verified_model_dir(settings.mlflow.registered_model, version, settings)


def test_a_source_of_another_run_is_refused(
    settings: Settings, log_model: Callable[[], tuple[str, str]]
) -> None:
    uri, run_id = log_model()
    _, other_run = log_model()
    with pytest.raises(ModelIntegrityError, match="not an artifact of run"):
        record_digest(uri, other_run, settings)
    client = get_client(settings)
    client.log_text(other_run, "not a model", "plain/README.txt")
    record_digest(f"runs:/{other_run}/plain", other_run, settings)  # its own run: fine
    with pytest.raises(ModelIntegrityError, match="not an artifact of run"):
        record_digest(f"runs:/{other_run}/plain", run_id, settings)


def test_digest_covers_paths_and_bytes(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.bin").write_bytes(b"12")
    first = artifact_digest(tmp_path / "a")
    (tmp_path / "a" / "x.bin").write_bytes(b"13")
    assert artifact_digest(tmp_path / "a") != first
    (tmp_path / "a" / "x.bin").write_bytes(b"12")
    assert artifact_digest(tmp_path / "a") == first
    (tmp_path / "a" / "x.bin").rename(tmp_path / "a" / "y.bin")
    assert artifact_digest(tmp_path / "a") != first
    (tmp_path / "a" / "link").symlink_to(tmp_path / "a" / "y.bin")
    with pytest.raises(ModelIntegrityError, match="symbolic link"):
        artifact_digest(tmp_path / "a")


def test_a_model_logged_and_hashed_outside_driftloops_experiment_is_refused(
    settings: Settings,
) -> None:
    """A user who may create versions (the rollout user) but not write driftloop's experiment
    logs its own model, records its own hash on its own run in an experiment of its own and
    registers it: the hash matches, but the run does not vouch (reproduces a review finding)."""
    import mlflow

    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(settings.mlflow.uri)
    mlflow.set_experiment(f"{settings.mlflow.experiment}-elsewhere")
    try:
        with mlflow.start_run() as run:
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=str(FAKE_MODEL),
                model_config={"bias": -1.0},
                pip_requirements=["mlflow"],
            )
    finally:
        mlflow.set_tracking_uri(previous)
    uri, run_id = str(info.model_uri), run.info.run_id
    digest = record_digest(uri, run_id, settings)  # a valid hash, on the foreign run
    version = register_version(uri, run_id, {DIGEST_TAG: digest}, settings).version
    name = settings.mlflow.registered_model
    with pytest.raises(ModelIntegrityError, match="outside the experiment"):
        load_verified_pyfunc(f"models:/{name}/{version}", settings)
    with pytest.raises(ModelIntegrityError, match="outside the experiment"):
        expected_digest(name, version, settings)
