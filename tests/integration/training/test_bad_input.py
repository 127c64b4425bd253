"""Bad input gives one readable error and leaves no registered version behind."""

from __future__ import annotations

from typing import Any

import pytest

from driftloop.errors import NotFoundError, ServiceUnavailableError, TrainingError
from driftloop.registry import client as registry

pytestmark = pytest.mark.integration


def _versions(settings: Any) -> list[Any]:
    name = settings.mlflow.registered_model
    return list(registry.get_client(settings).search_model_versions(f"name = '{name}'"))


def test_window_without_data_is_one_readable_error(train_settings: Any) -> None:
    from driftloop.training.pipeline import train_and_register

    with pytest.raises(TrainingError, match=r"2014-01.*ingest"):
        train_and_register("2014-01", "2014-02", train_settings)
    with pytest.raises(TrainingError, match="holdout month 2013-05"):
        train_and_register("2013-04", "2013-04", train_settings)
    assert not _versions(train_settings)


def test_unknown_feature_service_is_one_readable_error(train_settings: Any) -> None:
    from driftloop.training.pipeline import train_and_register

    s = train_settings.model_copy(
        update={
            "features": train_settings.features.model_copy(update={"feature_service": "nope_v9"})
        }
    )
    with pytest.raises(NotFoundError, match="nope_v9"):
        train_and_register("2013-01", "2013-01", s)
    assert not _versions(train_settings)


def test_unreachable_mlflow_fails_fast_from_the_cli(
    train_settings: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from driftloop.cli import main
    from driftloop.embedded.services import free_port
    from driftloop.settings import use_settings

    dead = f"http://127.0.0.1:{free_port()}"
    use_settings(
        train_settings.model_copy(
            update={"mlflow": train_settings.mlflow.model_copy(update={"tracking_uri": dead})}
        )
    )
    from driftloop.training.pipeline import train_and_register

    with pytest.raises(ServiceUnavailableError, match="unreachable"):
        train_and_register("2013-01", "2013-01")
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--from", "2013-01", "--to", "2013-01"])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: MLflow is unreachable")
    assert not _versions(train_settings)
