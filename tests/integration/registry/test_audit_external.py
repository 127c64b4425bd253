"""A registry change made directly in MLflow (a real MLflow client against the real server, as
somebody with MLflow credentials would) is found by ``detect_external`` and audited once as
``external_change``; changes made through driftloop are not; the chain stays intact. Each
driftloop change anchors the chain head in the real registry (``driftloop.audit_head``), and
``driftloop audit verify`` checks the file against it: the last record deleted, every hash
stripped or the chain recomputed around an edited record fail; an intact log passes."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from driftloop.cli import main
from driftloop.registry import audit
from driftloop.registry.client import get_client, register_version, registry_snapshot
from driftloop.registry.promotion import assign_alias_after_gate, read_audit, set_weight
from driftloop.settings import Settings

pytestmark = pytest.mark.integration


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


def _verify_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """``driftloop audit verify [args]`` in this process: (exit code, stdout + stderr)."""
    capsys.readouterr()  # what the setup printed (MLflow's run links) is not verify's
    try:
        main(["audit", "verify", *args])
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out + out.err


def test_verify_checks_the_log_against_the_head_anchored_in_the_registry(
    settings: Settings, mlflow_server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from mlflow import MlflowClient

    v1, v2 = _versions(settings, 2)
    assign_alias_after_gate(v1, "champion", "gate", settings=settings)
    assign_alias_after_gate(v2, "challenger", "gate", settings=settings)
    last = set_weight(10, "t", "canary", settings)
    name = settings.mlflow.registered_model
    tags = MlflowClient(mlflow_server).get_registered_model(name).tags
    assert tags[audit.HEAD_TAG] == f"3:{last['hash']}"
    assert _verify_cli(capsys, "--require-anchor") == (
        0,
        "3 records, chain intact; anchored: record 3 matches the registry's driftloop.audit_head\n",
    )
    # a change made in MLflow is audited after the anchored head, without a registry write
    MlflowClient(mlflow_server).set_registered_model_alias(name, "champion", v2)
    assert audit.detect_external(registry_snapshot(settings), settings) is not None
    code, out = _verify_cli(capsys, "--require-anchor")
    assert code == 0
    assert out.endswith("; 1 records after the anchored head (not anchored)\n")

    path = audit.audit_path(settings)
    intact = path.read_text().splitlines()

    # the last anchored record deleted (and the unanchored one after it)
    path.write_text("\n".join(intact[:2]) + "\n")
    code, out = _verify_cli(capsys)
    assert code == 1
    assert "truncated: the registry's driftloop.audit_head anchors record 3" in out

    # every hash and link stripped, and the actors rewritten
    stripped = []
    for line in intact:
        record = json.loads(line)
        del record["hash"], record["prev"]
        stripped.append(json.dumps({**record, "actor": "somebody-else"}))
    path.write_text("\n".join(stripped) + "\n")
    code, out = _verify_cli(capsys)
    assert code == 1
    assert "line 3: hashes stripped" in out

    # a middle record edited and the whole chain recomputed after it
    rechained, prev = [], audit.GENESIS
    for i, line in enumerate(intact):
        record = json.loads(line)
        if i == 1:
            record["to_version"] = "666"
        record["prev"] = prev
        record["hash"] = prev = audit.record_hash(record)
        rechained.append(json.dumps(record))
    path.write_text("\n".join(rechained) + "\n")
    assert audit.verify(settings).intact  # consistent in itself: the file alone cannot tell
    code, out = _verify_cli(capsys)
    assert code == 1
    assert "line 3: chain rewritten" in out

    path.write_text("\n".join(intact) + "\n")  # put back: intact again
    assert _verify_cli(capsys, "--require-anchor")[0] == 0


def test_verify_without_a_reachable_registry_says_it_is_not_anchored(
    make_settings: Callable[..., Settings], capsys: pytest.CaptureFixture[str]
) -> None:
    from driftloop.embedded.services import free_port

    settings = make_settings(mlflow_uri=f"http://127.0.0.1:{free_port()}")  # nothing listens
    audit.append({"action": "set_weight", "model": "m"}, settings)
    code, out = _verify_cli(capsys)
    assert code == 0
    assert out.startswith("1 records, chain intact; not anchored: registry unreachable (")
    assert _verify_cli(capsys, "--require-anchor")[0] == 1
