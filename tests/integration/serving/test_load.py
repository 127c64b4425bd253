"""Hot swap under load: promote and roll back while clients hammer the server; nothing fails."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest
from polling import wait_for

from driftloop.registry.promotion import (
    assign_alias_after_gate,
    promote,
    rollback,
    set_weight,
    start_rollout,
)
from serving.examples import features_request

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_promote_and_rollback_under_load_fail_no_request(
    canary: Callable[..., Any], register: Callable[..., str]
) -> None:
    c = canary("better", weight=50)
    start_rollout(50, "test", c.settings)  # promote takes only a challenger whose canary ran
    settings, url, v1, v2 = c.settings, c.infer, c.v1, c.v2
    ready = f"{c.url}/v2/health/ready"
    stop = threading.Event()
    statuses: Counter[int] = Counter()
    versions: Counter[str] = Counter()
    failures: list[str] = []

    async def client_loop() -> None:
        async with httpx.AsyncClient(timeout=30) as client:

            async def worker(w: int) -> None:
                i = 0
                while not stop.is_set():
                    body = orjson.dumps(features_request(1 + i % 3, request_id=f"w{w}-{i}"))
                    try:
                        r = await client.post(
                            url, content=body, headers={"Content-Type": "application/json"}
                        )
                    except httpx.HTTPError as exc:
                        failures.append(repr(exc))
                        continue
                    finally:
                        i += 1
                    statuses[r.status_code] += 1
                    if r.status_code == 200:
                        versions[r.json()["model_version"]] += 1
                    else:
                        failures.append(r.text)

            await asyncio.gather(*(worker(w) for w in range(6)))

    load = threading.Thread(target=lambda: asyncio.run(client_loop()))
    started = time.monotonic()
    load.start()
    try:
        time.sleep(3)
        promote("test", "promote under load", {}, settings)  # v2 becomes champion
        wait_for(lambda: httpx.get(ready).json()["champion"] == v2)
        v3 = register("good", settings, alias="challenger")
        set_weight(50, "test", "under load", settings)
        wait_for(lambda: httpx.get(ready).json()["challenger"] == v3)
        time.sleep(3)
        rollback("test", "rollback under load", {}, settings)
        wait_for(lambda: httpx.get(ready).json()["challenger"] is None)
        v4 = register("better", settings)
        assign_alias_after_gate(v4, "challenger", "under load", settings=settings)
        set_weight(30, "test", "under load", settings)
        wait_for(lambda: httpx.get(ready).json()["challenger"] == v4)
        time.sleep(max(0.0, 20 - (time.monotonic() - started)))
    finally:
        stop.set()
        load.join(60)
    assert failures == []
    assert set(statuses) == {200}
    assert sum(statuses.values()) > 500
    assert {v1, v2, v3, v4} <= set(versions)  # every version answered at some point
