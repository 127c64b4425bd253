"""Retrain guards on the ledger: cooldown, daily budget, de-duplication, atomic claims."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from driftloop.loop.ledger import (
    FAILED,
    FINISHED,
    SKIPPED,
    STARTED,
    check_guards,
    claim_retrain,
    finish_retrain,
    list_retrains,
)

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def settings(make_settings: Any) -> Any:
    return make_settings(
        monitoring={"retrain_cooldown_minutes": 30, "daily_retrain_budget": 2},
        mlflow={"registered_model": "m"},
    )


def test_first_claim_starts_and_same_window_is_a_duplicate_even_after_cooldown(settings) -> None:
    record, decision = claim_retrain("2013-01", "2013-03", settings, now=T0)
    assert decision.allowed
    assert record.status == STARTED
    finish_retrain(record, {"version": "2"}, settings)
    later = T0 + timedelta(hours=2)
    again, decision = claim_retrain("2013-01", "2013-03", settings, now=later)
    assert not decision.allowed
    assert decision.reason.startswith("duplicate")
    assert again.status == SKIPPED
    statuses = {r.id: r.status for r in list_retrains(settings)}
    assert statuses == {record.id: FINISHED, again.id: SKIPPED}


def test_cooldown_blocks_another_window_until_it_has_passed(settings) -> None:
    claim_retrain("2013-01", "2013-03", settings, now=T0)
    blocked = check_guards("2013-02", "2013-04", settings, now=T0 + timedelta(minutes=29))
    assert not blocked.allowed
    assert blocked.reason == (
        f"cooldown: last retrain of {settings.mlflow.registered_model} started "
        f"{T0.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC, 60 s of 30 min left"
    )
    assert check_guards("2013-02", "2013-04", settings, now=T0 + timedelta(minutes=31)).allowed


def test_daily_budget_counts_started_retrains_of_the_utc_day(settings) -> None:
    claim_retrain("2013-01", "2013-02", settings, now=T0)
    claim_retrain("2013-02", "2013-03", settings, now=T0 + timedelta(hours=1))
    over = check_guards("2013-03", "2013-04", settings, now=T0 + timedelta(hours=2))
    assert not over.allowed
    assert over.reason.startswith("budget")
    next_day = T0.replace(hour=0) + timedelta(days=1, minutes=1)
    assert check_guards("2013-03", "2013-04", settings, now=next_day).allowed


def test_a_failed_window_may_run_again_and_skips_do_not_count(settings) -> None:
    record, _ = claim_retrain("2013-01", "2013-03", settings, now=T0)
    finish_retrain(record, {"error": "boom"}, settings, failed=True)
    assert list_retrains(settings)[0].status == FAILED
    retry = check_guards("2013-01", "2013-03", settings, now=T0 + timedelta(hours=1))
    assert retry.allowed
    # A skipped claim is not a retrain: it neither starts a cooldown nor spends budget.
    claim_retrain("2013-01", "2013-03", settings, now=T0 + timedelta(minutes=5))  # cooldown
    assert check_guards("2013-05", "2013-06", settings, now=T0 + timedelta(minutes=31)).allowed


def test_guards_are_per_model_and_force_bypasses_them(settings) -> None:
    claim_retrain("2013-01", "2013-03", settings, model="a", now=T0)
    assert check_guards("2013-01", "2013-03", settings, model="b", now=T0).allowed
    record, decision = claim_retrain("2013-01", "2013-03", settings, model="a", force=True, now=T0)
    assert decision.allowed
    assert decision.reason == "forced"
    assert record.status == STARTED


def test_concurrent_claims_of_one_window_start_exactly_one(settings) -> None:
    results: list[bool] = []

    def claim() -> None:
        results.append(claim_retrain("2013-06", "2013-08", settings)[1].allowed)

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False] * 7 + [True]
