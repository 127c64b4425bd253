"""Canary/shadow routing: sticky by a routing key, split by the registry's canary weight.

A key hashes (BLAKE2b, stable across processes and replicas) to a bucket 0..99; buckets below the
weight go to the challenger. In ``canary`` mode that request is answered by the challenger; in
``shadow`` mode the champion answers and the challenger scores a copy off the request path (the
weight is then the mirror share). A challenger that is not loaded gets no traffic.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum

from serving.handles import ModelHandle, ServingState


class Variant(StrEnum):
    CHAMPION = "champion"
    CHALLENGER = "challenger"


def bucket(key: str) -> int:
    """Stable bucket 0..99 of a routing key."""
    digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % 100


@dataclass(frozen=True)
class Route:
    """Who answers a request, and who (if anyone) scores a shadow copy."""

    primary: ModelHandle
    variant: Variant
    shadow: ModelHandle | None = None


def route(state: ServingState, key: str) -> Route | None:
    """The route of a request with ``key`` under ``state`` (None when no champion is loaded)."""
    champion, challenger = state.champion, state.challenger
    if champion is None:
        return None
    if challenger is None or state.weight <= 0 or bucket(key) >= state.weight:
        return Route(champion, Variant.CHAMPION)
    if state.mode == "shadow":
        return Route(champion, Variant.CHAMPION, shadow=challenger)
    return Route(challenger, Variant.CHALLENGER)
