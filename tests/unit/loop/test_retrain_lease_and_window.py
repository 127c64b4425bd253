"""A killed retrain does not block its window forever (the claim's lease), and the retrain window
is clamped to data that exists BEFORE the claim takes the cooldown and the budget."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from driftloop.errors import InvalidInputError
from driftloop.loop import trigger
from driftloop.loop.ledger import (
    EXPIRED,
    FINISHED,
    STARTED,
    check_guards,
    claim_retrain,
    finish_retrain,
    list_retrains,
)
from driftloop.loop.trigger import claim_window, clamp_window

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def settings(make_settings: Any) -> Any:
    return make_settings(
        monitoring={
            "retrain_cooldown_minutes": 30,
            "daily_retrain_budget": 2,
            "retrain_lease_minutes": 60,
        },
        data={"first_month": "2013-01", "last_month": "2013-12"},
        mlflow={"registered_model": "m"},
    )


def test_a_claim_past_its_lease_no_longer_blocks_its_window(settings: Any) -> None:
    killed, decision = claim_retrain("2013-01", "2013-03", settings, now=T0)
    assert decision.allowed  # the run is then killed: no finish, no failure
    within = check_guards("2013-01", "2013-03", settings, now=T0 + timedelta(minutes=59))
    assert not within.allowed
    assert within.reason.startswith("duplicate")

    later = T0 + timedelta(minutes=61)
    assert check_guards("2013-01", "2013-03", settings, now=later).allowed
    again, decision = claim_retrain("2013-01", "2013-03", settings, now=later)
    assert decision.allowed
    statuses = {r.id: r.status for r in list_retrains(settings)}
    assert statuses == {killed.id: EXPIRED, again.id: STARTED}
    (expired,) = [r for r in list_retrains(settings) if r.id == killed.id]
    assert "lease" in expired.outcome["expired"]


def test_expired_claims_count_for_neither_cooldown_nor_budget(settings: Any) -> None:
    claim_retrain("2013-01", "2013-02", settings, now=T0)
    claim_retrain("2013-02", "2013-03", settings, now=T0 + timedelta(minutes=31))
    at = T0 + timedelta(minutes=95)  # both started claims are past their 60 min lease
    assert check_guards("2013-03", "2013-04", settings, now=at).allowed


def test_a_finished_retrain_still_counts_after_the_lease(settings: Any) -> None:
    record, _ = claim_retrain("2013-01", "2013-03", settings, now=T0)
    finish_retrain(record, {"version": "2"}, settings)
    late = check_guards("2013-01", "2013-03", settings, now=T0 + timedelta(hours=5))
    assert not late.allowed
    assert late.reason.startswith("duplicate")
    assert [r.status for r in list_retrains(settings)] == [FINISHED]


def test_window_is_clamped_to_the_data_with_a_holdout_month_after_it(settings: Any) -> None:
    assert clamp_window("2012-10", "2013-02", settings) == {
        "start_month": "2013-01",
        "end_month": "2013-02",
        "holdout_month": "2013-03",
    }
    assert clamp_window("2013-10", "2013-12", settings) == {
        "start_month": "2013-10",
        "end_month": "2013-11",
        "holdout_month": "2013-12",
    }


def test_window_widens_to_months_the_data_repo_holds(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(trigger, "available_months", lambda s: ["2013-11", "2013-12", "2014-01"])
    assert clamp_window("2013-11", "2013-12", settings)["holdout_month"] == "2014-01"


@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("2014-03", "2014-05"),
        ("2013-12", "2013-12"),
        ("2013-05", "2013-02"),
        ("2013-13", "2014-01"),
    ],
)
def test_a_window_without_data_fails_before_any_claim(settings: Any, start: str, end: str) -> None:
    with pytest.raises(InvalidInputError):
        claim_window(start, end, settings, reason="drift", source="test")
    assert list_retrains(settings) == []  # no cooldown, no budget, no window taken
    window, record, decision = claim_window("2013-02", "2013-04", settings)
    assert decision.allowed
    assert record.window == "2013-02..2013-04"
    assert window["holdout_month"] == "2013-05"


def test_the_claim_records_the_clamped_window(settings: Any) -> None:
    window, record, decision = claim_window("2012-11", "2013-02", settings, source="test")
    assert decision.allowed
    assert window["start_month"] == "2013-01"
    assert record.window == "2013-01..2013-02"
