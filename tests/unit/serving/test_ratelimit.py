"""The per-caller token bucket of serving.ratelimit, on a scripted clock (no sleeping)."""

from __future__ import annotations

import pytest

from serving.ratelimit import RateLimiter, retry_after_header


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_caller_gets_its_burst_then_the_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=10, burst=3, clock=clock)
    assert [limiter.wait_s("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.wait_s("a") == pytest.approx(0.1)  # the next token in 1/rate
    clock.now += 0.11
    assert limiter.wait_s("a") == 0.0
    assert limiter.wait_s("a") > 0
    clock.now += 60  # refills to the burst, never above
    assert [limiter.wait_s("a") for _ in range(4)][-1] > 0


def test_callers_are_limited_separately() -> None:
    limiter = RateLimiter(rate=1, burst=1, clock=Clock())
    assert limiter.wait_s("a") == 0.0
    assert limiter.wait_s("a") > 0
    assert limiter.wait_s("b") == 0.0


def test_idle_buckets_are_dropped_and_memory_is_bounded() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=10, burst=10, max_callers=100, clock=clock)  # idle after 1 s
    for i in range(100):
        limiter.wait_s(f"c{i}")
    assert len(limiter) == 100
    limiter.wait_s("late")  # full: the least recently used bucket goes
    assert len(limiter) == 100
    clock.now += 2.0  # every bucket is full again: the same as none
    limiter.wait_s("new")
    assert len(limiter) == 1
    for i in range(10_000):  # many callers never grow it past the cap
        limiter.wait_s(f"x{i}")
    assert len(limiter) == 100


def test_a_busy_caller_is_not_forgotten_while_others_come_and_go() -> None:
    limiter = RateLimiter(rate=1, burst=2, max_callers=10, clock=Clock())
    limiter.wait_s("busy")
    limiter.wait_s("busy")
    for i in range(5):
        limiter.wait_s(f"other{i}")
    assert limiter.wait_s("busy") > 0  # still limited: its bucket was kept


def test_retry_after_is_whole_seconds_at_least_one() -> None:
    assert retry_after_header(0.001) == "1"
    assert retry_after_header(2.2) == "3"
    with pytest.raises(ValueError, match="rate"):
        RateLimiter(rate=0, burst=1)
