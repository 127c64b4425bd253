"""Links a person opens in a browser: the MLflow UI pages of a model version, a run and a run's
artifact, all under ``settings.mlflow.browser_url`` (``mlflow.public_url``, else the tracking
URI), so they work on one machine and, with ``public_url`` set to the Ingress, from outside a
cluster whose flow-run pods reach MLflow at an in-cluster address.

An HTML artifact opens in the MLflow UI's artifact view, which renders it in a sandboxed frame
(MLflow's ``get-artifact`` endpoint always answers with ``Content-Disposition: attachment``, so
a browser downloads rather than shows it); :attr:`ArtifactLinks.download` is that endpoint's
URL, for scripts and ``curl``. Both go through MLflow's own authentication.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from urllib.parse import quote, urlencode

from driftloop.registry.client import get_client
from driftloop.settings import Settings, get_settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ArtifactLinks:
    """Where one run artifact opens (``view``: the MLflow UI) and downloads (``download``)."""

    view: str
    download: str
    run: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def version_url(version: str, settings: Settings | None = None, name: str | None = None) -> str:
    """The MLflow UI page of a registered model version."""
    settings = settings or get_settings()
    model = quote(name or settings.mlflow.registered_model, safe="")
    return f"{settings.mlflow.browser_url}/#/models/{model}/versions/{quote(str(version))}"


def experiment_of(run_id: str, settings: Settings | None = None) -> str:
    """The experiment id of run ``run_id`` (the UI's run pages are under their experiment)."""
    client = get_client(settings or get_settings())
    return str(client.get_run(run_id).info.experiment_id)


def run_url(run_id: str, experiment_id: str, settings: Settings | None = None) -> str:
    settings = settings or get_settings()
    return f"{settings.mlflow.browser_url}/#/experiments/{experiment_id}/runs/{run_id}"


def artifact_links(
    run_id: str, path: str, settings: Settings | None = None, experiment_id: str | None = None
) -> ArtifactLinks:
    """Links to artifact ``path`` (e.g. ``monitoring/<id>/drift.html``) of run ``run_id``;
    ``experiment_id`` is looked up when not given (one MLflow call)."""
    settings = settings or get_settings()
    experiment_id = experiment_id or experiment_of(run_id, settings)
    run = run_url(run_id, experiment_id, settings)
    query = urlencode({"path": path, "run_uuid": run_id})
    return ArtifactLinks(
        view=f"{run}/artifactPath/{quote(path)}",
        download=f"{settings.mlflow.browser_url}/get-artifact?{query}",
        run=run,
    )
