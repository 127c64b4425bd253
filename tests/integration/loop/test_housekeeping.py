"""Retention on real files: capture and feedback partitions, drift report folders and refused
ingests' rows in a tmp state folder, a real git + DVC data repository with a local remote, and
versions registered on the real MLflow server whose tags reference a data revision, a report
and a capture window. Expired items go; referenced ones stay and are listed; a dry run removes
nothing; with MLflow unreachable nothing is removed."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from driftloop.data.capture import FEEDBACK, PREDICTIONS, partition_dir
from driftloop.data.repo import DataRepo
from driftloop.errors import ServiceUnavailableError
from driftloop.loop.housekeeping import history_path, run_housekeeping
from driftloop.monitoring.attribution import EXPLANATIONS
from driftloop.registry.client import get_client, register_version
from driftloop.settings import Settings

pytestmark = pytest.mark.integration

#: The housekeeping clock: 100 days after the files were written (their real mtimes and the data
#: repository's commit times are "now"), so every limit below is crossed by real timestamps.
NOW = datetime.now(UTC) + timedelta(days=100)
DAYS = 30.0


@pytest.fixture
def settings(make_settings: Callable[..., Settings], mlflow_server: str) -> Settings:
    key = uuid.uuid4().hex[:8]
    limits = ("captures_days", "feedback_days", "reports_days", "quarantine_days")
    return make_settings(
        mlflow_uri=mlflow_server,
        mlflow={"registered_model": f"retention-{key}", "experiment": f"retention-{key}"},
        retention={**dict.fromkeys(limits, DAYS), "dvc_cache_days": DAYS},
    )


def _register(settings: Settings, tags: dict[str, str]) -> str:
    """A version of a plain run artifact (never loaded) with ``tags``."""
    client = get_client(settings)
    found = client.get_experiment_by_name(settings.mlflow.experiment)
    exp = found.experiment_id if found else client.create_experiment(settings.mlflow.experiment)
    run = client.create_run(exp)
    client.log_text(run.info.run_id, "not a model", "plain/README.txt")
    client.set_terminated(run.info.run_id)
    source = f"runs:/{run.info.run_id}/plain"
    return register_version(source, run.info.run_id, tags, settings).version


def _partition(settings: Settings, kind: str, day: datetime) -> Path:
    folder = partition_dir(kind, day.date(), settings)
    folder.mkdir(parents=True)
    (folder / "part-host-1-0.parquet").write_bytes(os.urandom(300))
    return folder


def _report(settings: Settings, created: datetime, window: tuple[datetime, datetime]) -> Path:
    folder = settings.state / "reports" / f"{created:%Y%m%dT%H%M%SZ}-v1"
    folder.mkdir(parents=True)
    meta = {
        "id": folder.name,
        "created": created.isoformat(),
        "window": {"start": window[0].isoformat(), "end": window[1].isoformat()},
    }
    (folder / "summary.json").write_text(json.dumps(meta))
    (folder / "drift.html").write_text("<html>report</html>")
    return folder


def _rejected(settings: Settings, name: str, when: datetime) -> Path:
    path = settings.state / "rejected" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(os.urandom(200))
    os.utime(path, (when.timestamp(), when.timestamp()))
    return path


def _commit_version(repo: DataRepo, text: str) -> tuple[str, str]:
    """Write, dvc add + push, commit one version of data/part.parquet; (commit, md5)."""
    target = repo.root / "data" / "part.parquet"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    repo.add_and_push(["data/part.parquet"])
    repo.commit(f"data {text}")
    md5 = repo.recorded_md5("data/part.parquet")
    assert md5 is not None
    return repo.revision(), md5


def _cache_file(repo: DataRepo, md5: str) -> Path:
    return repo.root / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]


def _remote_file(settings: Settings, md5: str) -> Path:
    return Path(settings.dvc_remote_url) / "files" / "md5" / md5[:2] / md5[2:]


def test_retention_removes_expired_data_and_keeps_what_versions_reference(
    settings: Settings,
) -> None:
    # captures: one partition in the window a version's drift tag records, one expired, one new
    judged_day = NOW - timedelta(days=60)
    judged = (judged_day.replace(hour=0, minute=0), judged_day.replace(hour=12, minute=0))
    kept_predictions = _partition(settings, PREDICTIONS, judged_day)
    old_predictions = _partition(settings, PREDICTIONS, NOW - timedelta(days=40))
    new_predictions = _partition(settings, PREDICTIONS, NOW - timedelta(days=5))
    # sampled explanations follow the captures' limit and windows
    kept_explanations = _partition(settings, EXPLANATIONS, judged_day)
    old_explanations = _partition(settings, EXPLANATIONS, NOW - timedelta(days=40))
    kept_feedback = _partition(settings, FEEDBACK, judged_day + timedelta(days=3))  # late labels
    old_feedback = _partition(settings, FEEDBACK, NOW - timedelta(days=45))
    # reports: one a version names, one expired, one recent
    named_report = _report(settings, NOW - timedelta(days=59), judged)
    other_window = (NOW - timedelta(days=80), NOW - timedelta(days=79))
    old_report = _report(settings, NOW - timedelta(days=50), other_window)
    new_report = _report(settings, NOW - timedelta(days=2), other_window)
    old_rejected = _rejected(settings, "flights-2013-01.parquet", NOW - timedelta(days=40))
    new_rejected = _rejected(settings, "flights-2013-02.parquet", NOW - timedelta(days=1))
    # the data repository: four versions of one file, the first registered, the third's remote
    # copy lost, the fourth in the workspace
    repo = DataRepo(settings)
    repo.ensure()
    rev1, md5_1 = _commit_version(repo, "one")
    rev2, md5_2 = _commit_version(repo, "two")
    _, md5_3 = _commit_version(repo, "three")
    _, md5_4 = _commit_version(repo, "four")
    _remote_file(settings, md5_3).unlink()
    latest = {"report": named_report.name, "window": [t.isoformat() for t in judged]}
    version = _register(
        settings,
        {
            "driftloop.data_rev": rev1,
            "driftloop.drift.latest": json.dumps(latest),
            "driftloop.drift.report": str(named_report / "drift.html"),
        },
    )
    label = f"{settings.mlflow.registered_model} v{version}"
    everything = [
        kept_predictions,
        old_predictions,
        new_predictions,
        kept_explanations,
        old_explanations,
        kept_feedback,
        old_feedback,
        named_report,
        old_report,
        new_report,
        old_rejected,
        new_rejected,
        *(_cache_file(repo, m) for m in (md5_1, md5_2, md5_3, md5_4)),
    ]

    dry = run_housekeeping(settings, dry_run=True, now=NOW)
    assert dry.dry_run
    assert all(p.exists() for p in everything)  # a dry run removes nothing
    assert history_path(settings).exists()

    report = run_housekeeping(settings, now=NOW)
    assert not report.dry_run
    state = settings.state
    removed = {(i.kind, i.path) for i in report.removed}
    assert {(i.kind, i.path) for i in dry.removed} == removed  # the dry run told the truth
    cache = repo.root / ".dvc" / "cache" / "files" / "md5"
    assert removed == {
        ("captures", str(old_predictions.relative_to(state))),
        ("captures", str(old_explanations.relative_to(state))),
        ("feedback", str(old_feedback.relative_to(state))),
        ("reports", str(old_report.relative_to(state))),
        ("quarantine", str(old_rejected.relative_to(state))),
        ("dvc_cache", str((cache / md5_2[:2] / md5_2[2:]).relative_to(state))),
    }
    kept = {i.path: i.why for i in report.kept}
    assert label in kept[str(kept_predictions.relative_to(state))]
    assert label in kept[str(kept_feedback.relative_to(state))]
    assert label in kept[str(kept_explanations.relative_to(state))]
    assert label in kept[str(named_report.relative_to(state))]
    assert (
        f"{label} (data revision {rev1[:10]})"
        in kept[str(_cache_file(repo, md5_1).relative_to(state))]
    )
    assert "not in the DVC remote" in kept[str(_cache_file(repo, md5_3).relative_to(state))]
    assert report.bytes_removed == sum(i.bytes for i in report.removed) > 0
    assert report.errors == []

    gone = (old_predictions, old_explanations, old_feedback, old_report, old_rejected)
    for path in (*gone, _cache_file(repo, md5_2)):
        assert not path.exists(), path
    for path in set(everything) - {
        old_predictions,
        old_explanations,
        old_feedback,
        old_report,
        old_rejected,
        _cache_file(repo, md5_2),
    }:
        assert path.exists(), path
    # the removed revision stays readable: the remote still holds its object
    assert repo.read_bytes("data/part.parquet", rev=rev2) == b"two"
    runs = history_path(settings).read_text().splitlines()
    assert [json.loads(line)["dry_run"] for line in runs] == [True, False]


def test_nothing_is_removed_when_mlflow_cannot_say_what_is_referenced(
    make_settings: Callable[..., Settings], capsys: pytest.CaptureFixture[str]
) -> None:
    from driftloop.cli import main

    settings = make_settings(mlflow={"tracking_uri": "http://127.0.0.1:9"})
    old = _partition(settings, PREDICTIONS, datetime.now(UTC) - timedelta(days=400))
    with pytest.raises(ServiceUnavailableError, match="MLflow is unreachable"):
        run_housekeeping(settings)
    assert old.exists()
    with pytest.raises(SystemExit) as exit_info:
        main(["housekeeping"])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("error: MLflow is unreachable")
    assert old.exists()


def test_cli_dry_run_lists_what_would_go(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    from driftloop.cli import main

    old = _partition(settings, PREDICTIONS, datetime.now(UTC) - timedelta(days=45))
    main(["housekeeping", "--dry-run"])
    out = capsys.readouterr().out
    assert f"would rm {old.relative_to(settings.state)}" in out
    assert old.exists()
    main(["housekeeping", "--json"])
    printed = json.loads(capsys.readouterr().out)
    assert printed["totals"]["captures"]["removed"] == 1
    assert not old.exists()
