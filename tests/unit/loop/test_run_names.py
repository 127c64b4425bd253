"""The name a monitor run takes once judged (issue 14: runs are named by what they did).

Seen in the Prefect runs list after ``make demo``: a scheduled window without captured rows was
named ``monitor no data months v5: insufficient_data (…)``."""

from __future__ import annotations

from types import SimpleNamespace

from flows.names import monitor_outcome_name


def _result(months: list[str], status: str) -> SimpleNamespace:
    return SimpleNamespace(
        months=months,
        model_version="5",
        verdict=SimpleNamespace(status=status),
        start="2026-12-02T02:40:00+00:00",
        end="2026-12-02T02:50:00+00:00",
    )


def test_a_judged_window_names_its_data_months_version_and_verdict() -> None:
    name = monitor_outcome_name(_result(["2013-05", "2013-06"], "retrain"))
    assert name.startswith("monitor 2013-05..2013-06 v5: retrain (")


def test_a_window_without_data_says_so_in_words() -> None:
    name = monitor_outcome_name(_result([], "insufficient_data"))
    assert name.startswith("monitor v5: insufficient data (")
    assert "_" not in name
