"""Readable errors of `driftloop features ...` for bad arguments and missing state."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from driftloop.cli import main


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    return int(exit_info.value.code or 0), capsys.readouterr().err


def test_unparseable_until_is_one_readable_line(
    make_settings: Callable[..., Any], capsys: pytest.CaptureFixture[str]
) -> None:
    make_settings()
    code, err = run(["features", "materialize", "--until", "end-of-march"], capsys)
    assert code == 1
    assert err.strip() == (
        "error: cannot parse --until 'end-of-march': expected an ISO time such as 2013-03-31T23:00"
    )


def test_materialize_without_ingested_data_says_so(
    make_settings: Callable[..., Any], capsys: pytest.CaptureFixture[str]
) -> None:
    make_settings()
    code, err = run(["features", "materialize"], capsys)
    assert code == 1
    assert "no ingested data" in err
    assert len(err.strip().splitlines()) == 1


def test_parity_without_a_feature_store_says_so(
    make_settings: Callable[..., Any], capsys: pytest.CaptureFixture[str]
) -> None:
    settings = make_settings()
    code, err = run(["features", "parity"], capsys)
    assert code == 1
    assert f"no feature store in {settings.state / 'features'}" in err


def test_until_parsing_naive_is_utc() -> None:
    from datetime import UTC, datetime

    from driftloop.features.store import parse_until

    assert parse_until("2013-03-31T23:00") == datetime(2013, 3, 31, 23, 0, tzinfo=UTC)
    assert parse_until("2013-03-31T23:00-04:00") == datetime(2013, 4, 1, 3, 0, tzinfo=UTC)
