"""Canary and shadow routing through a real server reconciled from the real MLflow registry."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest
from polling import wait_for

from driftloop.data.capture import read_predictions
from serving.examples import features_request

pytestmark = pytest.mark.integration


async def _send(url: str, bodies: list[bytes], concurrency: int = 8) -> list[dict[str, Any]]:
    queue: asyncio.Queue[tuple[int, bytes]] = asyncio.Queue()
    for item in enumerate(bodies):
        queue.put_nowait(item)
    out: list[dict[str, Any]] = [{} for _ in bodies]
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:

        async def worker() -> None:
            while not queue.empty():
                i, body = queue.get_nowait()
                r = await client.post(
                    url, content=body, headers={"Content-Type": "application/json"}
                )
                assert r.status_code == 200, r.text
                out[i] = r.json()

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return out


@pytest.mark.slow
def test_weight_10_sends_10_percent_and_keys_stick(canary: Callable[..., Any]) -> None:
    c = canary("better", weight=10)
    url, v1, v2 = c.infer, c.v1, c.v2
    bodies = [orjson.dumps(features_request(1, request_id=f"r{i}")) for i in range(5000)]
    answers = asyncio.run(_send(url, bodies))
    versions = Counter(a["model_version"] for a in answers)
    share = versions[v2] / len(answers)
    assert set(versions) == {v1, v2}
    assert 0.08 <= share <= 0.12, versions

    keyed = [orjson.dumps(features_request(1, routing_key=f"plane-{i % 40}")) for i in range(400)]
    by_key: dict[str, set[str]] = {}
    for i, a in enumerate(asyncio.run(_send(url, keyed))):
        by_key.setdefault(f"plane-{i % 40}", set()).add(a["model_version"])
    assert all(len(v) == 1 for v in by_key.values())  # one caller, one model


def test_shadow_mode_answers_with_champion_and_captures_both(
    canary: Callable[..., Any],
) -> None:
    # every copy is scored here: a pending bound above the test's requests (dropping copies
    # beyond serving.shadow_max_pending is tested in tests/unit/serving/test_dataplane.py)
    c = canary("raise", weight=100, mode="shadow", serving={"shadow_max_pending": 100})
    settings, url, v1 = c.settings, c.infer, c.v1
    bodies = [orjson.dumps(features_request(2, request_id=f"s{i}")) for i in range(20)]
    answers = asyncio.run(_send(url, bodies, concurrency=4))
    assert {a["model_version"] for a in answers} == {v1}  # callers never see the challenger

    def captured() -> bool:
        log = read_predictions(settings)
        return len(log) == 80

    wait_for(captured, timeout=10)
    log = read_predictions(settings)
    shadow = log[log["variant"] == "challenger"]
    assert len(shadow) == 40
    assert not shadow["served"].any()
    assert shadow["error"].str.contains("always fails").all()
    assert log[log["served"]]["model_version"].eq(v1).all()
