"""The rollout flow (real Prefect server) judges a live canary from the inference log with the
always-valid tests: a broken challenger (raises: the hard guard; or is far slower: latency
inferior) is rolled back and the audit log and the decision record say why; a healthy one is
promoted once every judged metric is non-inferior. The traffic carries no labels, so these runs
judge error rate and latency only (``rollout.metrics``)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import orjson
import pytest
from polling import wait_for

from driftloop.loop.decisions import get_decision, replay
from driftloop.loop.rollout import run_rollout
from driftloop.registry.client import get_alias
from driftloop.registry.promotion import read_audit
from driftloop.settings import Settings, use_settings
from serving.examples import features_request

pytestmark = pytest.mark.integration

#: Unlabelled traffic: judge what it can show; a look every 50 routed requests.
ROLLOUT = {
    "metrics": ["error_rate", "latency"],
    "look_every": 50,
    "max_requests": 4000,
    "max_minutes": 2.0,
    "poll_s": 0.5,
}


def with_rollout(settings: Settings) -> Settings:
    rollout = settings.rollout.model_copy(update=ROLLOUT)
    return settings.model_copy(update={"rollout": rollout})


@contextmanager
def traffic(url: str) -> Iterator[list[int]]:
    """Background clients sending single-row requests until the block ends."""
    stop = threading.Event()
    statuses: list[int] = []

    async def run() -> None:
        async with httpx.AsyncClient(timeout=30) as client:

            async def worker(w: int) -> None:
                i = 0
                while not stop.is_set():
                    body = orjson.dumps(features_request(1, request_id=f"t{w}-{i}"))
                    statuses.append(
                        (
                            await client.post(
                                url, content=body, headers={"Content-Type": "application/json"}
                            )
                        ).status_code
                    )
                    i += 1

            await asyncio.gather(*(worker(w) for w in range(4)))

    thread = threading.Thread(target=lambda: asyncio.run(run()))
    thread.start()
    try:
        yield statuses
    finally:
        stop.set()
        thread.join(60)


@pytest.mark.parametrize(
    ("kind", "why"), [("raise", "hard guard: challenger error rate"), ("slow", "latency")]
)
def test_rollout_flow_rolls_back_a_broken_challenger(
    kind: str, why: str, prefect_server: str, canary: Callable[..., Any]
) -> None:
    from flows.rollout import rollout  # imports prefect (seconds): only this test needs it

    c = canary(kind, prefect_url=prefect_server)
    settings, url, v1, v2 = with_rollout(c.settings), c.infer, c.v1, c.v2
    use_settings(settings)  # the flow reads the process-wide settings
    with traffic(url) as statuses:
        record = rollout(weight=50)
    assert set(statuses) == {200}  # callers never saw the broken challenger fail
    assert record["action"] == "rollback"
    assert get_alias("challenger", settings) is None
    champion = get_alias("champion", settings)
    assert champion is not None
    assert champion.version == v1
    last = read_audit(settings)[-1]
    assert last["action"] == "rollback"
    assert (last["from_version"], last["to_version"]) == (v2, v1)
    assert why in last["reason"]
    assert last["metrics"]["decision"] == "rollback"
    assert last["actor"] == "flow:rollout"
    assert record["decision_id"] in last["reason"]
    stored = get_decision(record["decision_id"], settings)
    assert stored["inputs"]["evidence"]["challenger"]["requests"] >= 20
    assert replay(stored)["same"]


def test_rollout_promotes_a_healthy_challenger(canary: Callable[..., Any]) -> None:
    c = canary("better")
    settings, url, v2 = with_rollout(c.settings), c.infer, c.v2
    with traffic(url) as statuses:
        decision, record = run_rollout(weight=50, settings=settings)
    assert set(statuses) == {200}
    assert decision.decision == "promote", decision.reasons
    assert {m.status for m in decision.metrics} == {"non_inferior"}
    # 0 errors in n requests is non-inferior at a 1-point margin only after hundreds of them
    assert decision.evidence.challenger.requests >= 300
    assert not decision.srm.mismatch
    assert record["to_version"] == v2
    champion = get_alias("champion", settings)
    assert champion is not None
    assert champion.version == v2


def test_a_decision_is_applied_only_to_the_challenger_it_was_taken_on(
    canary: Callable[..., Any], register: Callable[..., str]
) -> None:
    """A challenger registered while a rollout runs is not promoted on the old one's evidence:
    the registry refuses (409), the decision record says it was not applied, the registry keeps
    the new challenger untouched."""
    from driftloop.errors import ConflictError
    from driftloop.loop.decisions import list_decisions
    from driftloop.loop.rollout import conclude, judge_canary, start
    from driftloop.monitoring.noninferiority import decide

    c = canary("better")
    settings = with_rollout(c.settings)
    start(50, "test", settings)
    with traffic(c.infer):
        wait_for(lambda: judge_canary(settings).evidence.challenger.requests >= 5)
    # the budget's end: a rollback of v2 by default
    decision = decide(judge_canary(settings).evidence, settings.rollout, final=True)
    assert (decision.decision, decision.evidence.challenger.version) == ("rollback", c.v2)
    v3 = register("better", settings, alias="challenger")
    before = len(read_audit(settings))
    with pytest.raises(ConflictError, match=f"now version {v3}, not {c.v2}"):
        conclude(decision, 1, "test", settings)
    assert len(read_audit(settings)) == before
    assert get_alias("challenger", settings).version == v3
    last = list_decisions(settings, kind="rollout")[-1]
    assert last["applied"] is False
    assert "refusing to roll back" in last["error"]
