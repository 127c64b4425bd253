"""A registry change made directly in MLflow (a real MLflow client against the real server, as
somebody with MLflow credentials would) is found by ``detect_external`` and audited once as
``external_change``; changes made through driftloop are not; the chain stays intact."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from driftloop.registry import audit
from driftloop.registry.client import get_client, register_version, registry_snapshot
from driftloop.registry.promotion import assign_alias_after_gate, read_audit, set_weight
from driftloop.settings import Settings

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(make_settings: Callable[..., Settings], mlflow_server: str) -> Settings:
    key = uuid.uuid4().hex[:8]
    return make_settings(
        mlflow_uri=mlflow_server,
        mlflow={"registered_model": f"external-{key}", "experiment": f"external-{key}"},
    )


def _versions(settings: Settings, n: int) -> list[str]:
    """``n`` registered versions of a plain run artifact (never loaded)."""
    client = get_client(settings)
    run = client.create_run(client.create_experiment(settings.mlflow.experiment))
    client.log_text(run.info.run_id, "not a model", "plain/README.txt")
    client.set_terminated(run.info.run_id)
    source = f"runs:/{run.info.run_id}/plain"
    return [register_version(source, run.info.run_id, {}, settings).version for _ in range(n)]


def test_an_alias_moved_in_mlflow_is_audited_once_as_external(
    settings: Settings, mlflow_server: str
) -> None:
    from mlflow import MlflowClient

    v1, v2, v3 = _versions(settings, 3)
    assign_alias_after_gate(v1, "champion", "gate", settings=settings)
    assign_alias_after_gate(v2, "challenger", "gate", settings=settings)
    set_weight(10, "t", "canary", settings)
    # the reconciler's view after driftloop's own changes: nothing external
    assert audit.detect_external(registry_snapshot(settings), settings) is None
    assert len(read_audit(settings)) == 3

    # somebody with MLflow access moves the champion, bypassing driftloop
    name = settings.mlflow.registered_model
    MlflowClient(mlflow_server).set_registered_model_alias(name, "champion", v3)
    snap = registry_snapshot(settings)
    record = audit.detect_external(snap, settings)
    assert record is not None
    assert (record["action"], record["actor"], record["model"]) == (
        "external_change",
        "external",
        name,
    )
    assert (record["from_version"], record["to_version"]) == (v1, v3)
    assert record["before"] == {"champion": v1, "challenger": v2, "weight": 10, "mode": None}
    assert record["after"] == {"champion": v3, "challenger": v2, "weight": 10, "mode": None}

    # two more replicas read the same registry: nothing more is written
    assert audit.detect_external(registry_snapshot(settings), settings) is None
    assert audit.detect_external(snap, settings) is None
    assert [r["action"] for r in read_audit(settings)][-2:] == ["set_weight", "external_change"]

    # driftloop's next change starts from the state as it is now, and is not external
    set_weight(0, "t", "stop", settings)
    assert audit.detect_external(registry_snapshot(settings), settings) is None
    assert audit.verify(settings).records == 5
    assert audit.verify(settings).intact


def test_nothing_is_written_when_nothing_changed(settings: Settings) -> None:
    (v1,) = _versions(settings, 1)
    # no audit log yet: nothing to compare with, never raises
    assert audit.detect_external(registry_snapshot(settings), settings) is None
    assert not audit.audit_path(settings).exists()
    assign_alias_after_gate(v1, "champion", "gate", settings=settings)
    for _ in range(3):
        assert audit.detect_external(registry_snapshot(settings), settings) is None
    assert [r["action"] for r in read_audit(settings)] == ["register_champion"]
