"""Routing: stable buckets, weight share, stickiness, shadow, no traffic to an absent challenger."""

from __future__ import annotations

import numpy as np

from serving.handles import ModelHandle, ServingState
from serving.router import Variant, bucket, route


def _handle(version: str) -> ModelHandle:
    return ModelHandle("m", version, lambda df: np.zeros(len(df)))


CHAMP, CHALL = _handle("1"), _handle("2")


def test_bucket_is_stable_and_in_range() -> None:
    assert bucket("N14228") == bucket("N14228")
    assert {bucket(f"k{i}") for i in range(2000)} == set(range(100))


def test_weight_sets_the_challenger_share_and_keys_stick() -> None:
    state = ServingState(CHAMP, CHALL, weight=10)
    keys = [f"req-{i}" for i in range(5000)]
    first = [route(state, k) for k in keys]
    share = sum(r is not None and r.variant is Variant.CHALLENGER for r in first) / len(keys)
    assert 0.08 <= share <= 0.12
    again = [route(state, k) for k in keys]
    assert [r.variant for r in first if r] == [r.variant for r in again if r]


def test_shadow_mode_answers_with_champion_and_mirrors_to_challenger() -> None:
    state = ServingState(CHAMP, CHALL, weight=100, mode="shadow")
    r = route(state, "any")
    assert r is not None
    assert r.primary is CHAMP
    assert r.variant is Variant.CHAMPION
    assert r.shadow is CHALL


def test_no_challenger_or_zero_weight_sends_everything_to_champion() -> None:
    for state in (ServingState(CHAMP, None, weight=100), ServingState(CHAMP, CHALL, weight=0)):
        routes = [route(state, f"k{i}") for i in range(200)]
        assert all(r is not None and r.primary is CHAMP for r in routes)


def test_without_champion_nothing_is_routed() -> None:
    assert route(ServingState(None, CHALL, weight=100), "k") is None
