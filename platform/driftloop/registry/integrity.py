"""Model artifacts are verified before they run.

MLflow loads a pickled model, so whoever can write to the artifact store could otherwise run code
in serving. When training logs a model, the content hash of its artifact directory
(:func:`artifact_digest`: sha256 over the sorted relative paths and bytes of every file) is
recorded as a **run parameter** of the training run, ``driftloop.artifact_sha256/<model>``
(parameters are immutable once logged: only the run's writer could have put it there), and as a
readable version tag ``driftloop.artifact_sha256`` at registration (the tag is informative: the
parameter decides).

Loading goes through :func:`verified_model_dir`: the version's artifacts are downloaded into a
local folder, hashed, and only a folder whose hash matches the parameter is handed to
``mlflow.pyfunc.load_model``, so no pickle is unpickled before its hash matched. A mismatch, a
missing hash (versions registered before hashes were recorded: re-register them), or a version
whose ``source`` is not an artifact of its own run raises :class:`ModelIntegrityError`.

``mlflow`` is imported inside the functions (~3 s; see :mod:`driftloop.registry.client`).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from driftloop.errors import ModelIntegrityError, NotFoundError
from driftloop.registry.client import (
    VersionInfo,
    get_client,
    get_run_data,
    get_version,
    register_version,
)
from driftloop.settings import Settings, get_settings

logger = logging.getLogger(__name__)

#: run parameter prefix: ``driftloop.artifact_sha256/<model id or artifact path>``
DIGEST_PARAM = "driftloop.artifact_sha256"
#: readable version tag (informative; the run parameter is what a load is checked against)
DIGEST_TAG = "driftloop.artifact_sha256"
_CHUNK = 1 << 20


def artifact_digest(path: Path) -> str:
    """sha256 over every file below ``path``: for each file in sorted order of its relative
    POSIX path, the path, a NUL, the size (8 bytes, big-endian) and the bytes. A symbolic link
    is refused (its target could change after the check)."""
    root = Path(path)
    if not root.is_dir():
        raise ModelIntegrityError(f"model artifact {root} is not a directory")
    files: list[tuple[str, Path]] = []
    for folder, dirs, names in os.walk(root, followlinks=False):
        for name in [*dirs, *names]:
            full = Path(folder) / name
            if full.is_symlink():
                raise ModelIntegrityError(f"model artifact holds a symbolic link: {full}")
        files += [(Path(folder, n).relative_to(root).as_posix(), Path(folder, n)) for n in names]
    digest = hashlib.sha256()
    for rel, full in sorted(files):
        digest.update(rel.encode() + b"\0" + full.stat().st_size.to_bytes(8, "big"))
        with full.open("rb") as fh:
            while chunk := fh.read(_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


# ---- where a model's artifact lives, and which run vouches for it ------------------------------
def _source(model_uri: str, run_id: str | None, settings: Settings) -> tuple[str, str, str]:
    """``(artifact uri to download, run id that logged it, parameter key)`` of a model URI:
    an MLflow 3 logged model (``models:/m-...``) or a run artifact (``runs:/<run>/<path>``).
    Refused when the artifact is not the run's own (``run_id``, when given, must match)."""
    client = get_client(settings, check=False)
    if model_uri.startswith("models:/m-"):
        model_id = model_uri.removeprefix("models:/").split("/", 1)[0]
        try:
            logged = client.get_logged_model(model_id)
        except Exception as exc:
            raise ModelIntegrityError(
                f"logged model {model_id} cannot be read ({type(exc).__name__}): refusing it"
            ) from None
        owner = logged.source_run_id
        location, key = str(logged.artifact_location), model_id
    elif model_uri.startswith("runs:/"):
        owner, _, rel = model_uri.removeprefix("runs:/").partition("/")
        location, key = model_uri, rel.strip("/")
    else:
        raise ModelIntegrityError(
            f"model source {model_uri!r} is neither a logged model (models:/m-...) nor a run "
            "artifact (runs:/...): its content cannot be tied to a training run"
        )
    if not owner or not key or (run_id is not None and owner != run_id):
        raise ModelIntegrityError(
            f"model source {model_uri} is not an artifact of run {run_id}: refusing it"
        )
    return location, owner, f"{DIGEST_PARAM}/{key}"


@contextlib.contextmanager
def _downloaded(artifact_uri: str, settings: Settings) -> Iterator[Path]:
    """The artifact directory, downloaded into a private temporary folder (removed after)."""
    from mlflow.artifacts import download_artifacts

    get_client(settings)  # pings the server, applies the client environment
    tmp = Path(tempfile.mkdtemp(prefix="driftloop-model-"))
    try:
        local = download_artifacts(
            artifact_uri=artifact_uri, dst_path=str(tmp), tracking_uri=settings.mlflow.uri
        )
        yield Path(local)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _recorded(run_id: str, key: str, settings: Settings) -> str | None:
    params, _, _ = get_run_data(run_id, settings)
    return params.get(key)


# ---- training side: record ----------------------------------------------------------------------
def record_digest(model_uri: str, run_id: str | None, settings: Settings | None = None) -> str:
    """Hash the logged model ``model_uri`` and record the hash as a parameter of the run that
    logged it (idempotent). When the run already holds a different hash, the artifact changed
    since it was logged: ModelIntegrityError."""
    settings = settings or get_settings()
    location, owner, key = _source(model_uri, run_id, settings)
    with _downloaded(location, settings) as local:
        digest = artifact_digest(local)
    before = _recorded(owner, key, settings)
    if before is None:
        get_client(settings, check=False).log_param(owner, key, digest)
    elif before != digest:
        raise ModelIntegrityError(
            f"model {model_uri} hashes to {digest[:16]}..., but run {owner} recorded "
            f"{before[:16]}... when it logged it: the artifact was changed"
        )
    logger.info("model %s of run %s: sha256 %s", model_uri, owner, digest)
    return digest


def register_verified_version(
    model_uri: str,
    run_id: str | None,
    tags: dict[str, str],
    settings: Settings | None = None,
    name: str | None = None,
) -> VersionInfo:
    """:func:`driftloop.registry.client.register_version` with the artifact hash recorded on
    the run (parameter) and on the version (tag ``driftloop.artifact_sha256``)."""
    settings = settings or get_settings()
    digest = record_digest(model_uri, run_id, settings)
    return register_version(model_uri, run_id, {**tags, DIGEST_TAG: digest}, settings, name)


# ---- loading side: verify -----------------------------------------------------------------------
def _version(name: str, version: str, settings: Settings) -> VersionInfo:
    try:
        return get_version(version, settings, name)
    except NotFoundError:
        raise
    except Exception as exc:  # e.g. a malformed version string
        raise NotFoundError(f"model {name} version {version} cannot be read: {exc}") from None


def _expected(model_uri: str, run_id: str | None, what: str, settings: Settings) -> tuple[str, str]:
    """``(artifact uri, recorded hash)`` of ``model_uri`` logged by ``run_id``."""
    if not run_id:
        raise ModelIntegrityError(f"{what} has no training run: no recorded artifact hash")
    location, owner, key = _source(model_uri, run_id, settings)
    _check_experiment(owner, what, settings)
    try:
        expected = _recorded(owner, key, settings)
    except NotFoundError:
        raise ModelIntegrityError(f"{what}: its training run {owner} does not exist") from None
    if not expected:
        raise ModelIntegrityError(
            f"{what} has no recorded artifact hash (run {owner} has no parameter {key}; "
            "versions registered before driftloop recorded hashes must be registered again): "
            "refusing to load it"
        )
    return location, expected


def _check_experiment(run_id: str, what: str, settings: Settings) -> None:
    """The vouching run must belong to driftloop's experiment (``mlflow.experiment``), which
    only the ``flows`` user may write: a user who can create versions (``rollout``) could
    otherwise log a model, and its hash, in an experiment of its own."""
    client = get_client(settings, check=False)
    try:
        run_experiment = client.get_run(run_id).info.experiment_id
        ours = client.get_experiment_by_name(settings.mlflow.experiment)
    except Exception as exc:
        raise ModelIntegrityError(
            f"{what}: its training run {run_id} cannot be read ({type(exc).__name__})"
        ) from None
    if ours is None or str(run_experiment) != str(ours.experiment_id):
        raise ModelIntegrityError(
            f"{what} was logged by run {run_id} outside the experiment "
            f"{settings.mlflow.experiment!r} that driftloop trains in: refusing it"
        )


def expected_digest(name: str, version: str, settings: Settings | None = None) -> str:
    """The hash recorded for ``name`` version ``version`` by its training run (the run
    parameter; the version's ``source`` must be an artifact of that run)."""
    settings = settings or get_settings()
    info = _version(name, str(version), settings)
    return _expected(info.source, info.run_id, f"model {name} version {version}", settings)[1]


def _verified_copy(location: str, expected: str, what: str, dst: Path, settings: Settings) -> Path:
    with _downloaded(location, settings) as local:
        actual = artifact_digest(local)
        if actual != expected:
            raise ModelIntegrityError(
                f"artifact of {what} hashes to {actual[:16]}..., not {expected[:16]}... "
                "recorded at registration: it was changed after registration; refusing to load it"
            )
        shutil.copytree(local, dst)
    return dst


@contextlib.contextmanager
def verified_dir(model_uri: str, settings: Settings | None = None) -> Iterator[Path]:
    """A local, verified copy of ``models:/<name>/<version>`` or ``models:/m-...`` (a logged
    model of a training run), removed when the block ends."""
    settings = settings or get_settings()
    tmp = Path(tempfile.mkdtemp(prefix="driftloop-verified-"))
    try:
        yield _verify_into(model_uri, tmp / "model", settings)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _verify_into(model_uri: str, dst: Path, settings: Settings) -> Path:
    rest = model_uri.removeprefix("models:/")
    if rest.startswith("m-") and "/" not in rest:
        client = get_client(settings)
        try:
            owner = client.get_logged_model(rest).source_run_id
        except Exception as exc:
            raise ModelIntegrityError(
                f"logged model {rest} cannot be read ({type(exc).__name__})"
            ) from None
        location, expected = _expected(model_uri, owner, f"logged model {rest}", settings)
        return _verified_copy(location, expected, f"logged model {rest}", dst, settings)
    name, _, version = rest.partition("/")
    if not model_uri.startswith("models:/") or not name or not version or "@" in rest:
        raise ModelIntegrityError(
            f"{model_uri!r}: only models:/<name>/<version> or models:/m-<id> can be verified"
        )
    return verified_model_dir(name, version, settings, dst)


def verified_model_dir(
    name: str, version: str, settings: Settings | None = None, dst: Path | None = None
) -> Path:
    """Download ``name`` version ``version``'s artifacts to ``dst`` (default: a new temporary
    folder the caller removes), check their hash against the one its training run recorded
    and return the folder. ModelIntegrityError when the hash differs or is missing."""
    settings = settings or get_settings()
    what = f"model {name} version {version}"
    info = _version(name, str(version), settings)
    location, expected = _expected(info.source, info.run_id, what, settings)
    target = dst or Path(tempfile.mkdtemp(prefix=f"driftloop-v{version}-")) / "model"
    return _verified_copy(location, expected, what, target, settings)


def load_verified_pyfunc(
    model_uri: str,
    settings: Settings | None = None,
    native: Callable[[Path], Any | None] | None = None,
) -> Any:
    """``mlflow.pyfunc.load_model`` of the verified local copy of ``model_uri`` (see
    :func:`verified_dir`); nothing of the artifact is unpickled before its hash matched.

    ``native(folder)``, when given, is tried first on the verified folder: what it returns
    (not None) is returned instead of the pyfunc, and the pickle is never loaded (serving's
    :class:`driftloop.inference.model.NumpyModel`)."""
    settings = settings or get_settings()
    with verified_dir(model_uri, settings) as local:
        if native is not None and (model := native(local)) is not None:
            return model
        import mlflow.pyfunc

        return mlflow.pyfunc.load_model(str(local))
