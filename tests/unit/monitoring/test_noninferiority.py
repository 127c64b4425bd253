"""The canary's evidence (from capture rows) and its three-outcome decision, on synthetic
inference logs shaped like the real one; decision records replay to the same answer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from driftloop.loop.decisions import get_decision, list_decisions, record_rollout, replay
from driftloop.monitoring.canary import CanaryEvidence, gather_evidence
from driftloop.monitoring.noninferiority import decide
from driftloop.schema import LABEL, OUTPUT_PROBABILITY
from driftloop.settings import RolloutSettings, Settings

T0 = datetime(2026, 11, 30, 12, tzinfo=UTC)
ROLLOUT = RolloutSettings(min_requests=50, min_labeled_rows=100, max_requests=4000)


def capture(
    requests: int,
    weight: float = 0.5,
    rows: int = 5,
    chall_shift: float = 0.0,
    chall_ms: float = 1.0,
    chall_error: float = 0.0,
    seed: int = 0,
    mode: str = "canary",
) -> pd.DataFrame:
    """An inference log of ``requests`` routed requests: the champion is calibrated; the
    challenger's probabilities are pushed by ``chall_shift`` on the logit scale (miscalibrated,
    higher log loss), its model call takes ``chall_ms``, it fails with ``chall_error``."""
    rng = np.random.default_rng(seed)
    out: list[dict[str, Any]] = []
    for i in range(requests):
        rid = f"r{i:05d}"
        ts = T0 + timedelta(milliseconds=10 * i)
        treated = rng.random() < weight
        p_true = rng.beta(2, 6, rows)
        y = (rng.random(rows) < p_true).astype(float)
        arms = [("champion", "1", p_true, 1.0, True, None)]
        if treated:
            logit = np.log(p_true / (1 - p_true)) + chall_shift
            failed = "boom" if rng.random() < chall_error else None
            p_b = 1 / (1 + np.exp(-logit))
            arms = (
                [("challenger", "2", p_b, chall_ms, False, failed), arms[0]]
                if mode == "shadow"
                else [("challenger", "2", p_b, chall_ms, True, failed)]
            )
        for variant, version, p, ms, served, error in arms:
            for r in range(rows):
                out.append(
                    {
                        "prediction_id": f"{rid}:{r}",
                        "request_id": rid,
                        "row": r,
                        "ts": ts,
                        "variant": variant,
                        "served": served,
                        "routed": True,
                        "model_version": version,
                        "latency_ms": ms + 1.0,
                        "model_ms": None if error else ms * rng.lognormal(0, 0.1),
                        OUTPUT_PROBABILITY: None if error else float(p[r]),
                        "error": error,
                        LABEL: y[r],
                    }
                )
    return pd.DataFrame(out)


def evidence(frame: pd.DataFrame, limit: int | None = None, mode: str = "canary") -> CanaryEvidence:
    return gather_evidence(frame, "1", "2", mode, 50, 0.5, limit=limit)


@pytest.fixture(scope="module")
def same() -> pd.DataFrame:
    return capture(3000, rows=20, seed=1)


def test_evidence_counts_routed_requests_in_arrival_order(same: pd.DataFrame) -> None:
    pinned = same.head(5).assign(request_id="pinned", prediction_id="pinned:0", routed=False)
    ev = evidence(pd.concat([pinned, same]), limit=1000)
    assert ev.routed == 1000
    assert ev.excluded == 1  # the pinned request is served, but is no evidence
    assert ev.available == 3000
    assert ev.champion.requests + ev.challenger.requests == 1000
    assert ev.treated == ev.challenger.requests
    assert ev.challenger.labeled == 20 * ev.challenger.requests
    assert ev.last_ts == pd.Timestamp(T0 + timedelta(milliseconds=10 * 999)).isoformat()
    # the same prefix whatever else arrived later: the look is reproducible
    again = evidence(same.head(20 * 1200), limit=1000).to_dict()
    first = evidence(same, limit=1000).to_dict()
    assert (again.pop("available"), first.pop("available")) == (1200, 3000)
    assert again == first


def test_a_good_challenger_is_promoted_with_every_metric_non_inferior(same: pd.DataFrame) -> None:
    d = decide(evidence(same), ROLLOUT, final=False)
    assert d.decision == "promote", d.reasons
    assert {m.metric: m.status for m in d.metrics} == dict.fromkeys(ROLLOUT.metrics, "non_inferior")
    assert d.metric_alpha == ROLLOUT.alpha / 4
    assert "error rate of this decision <= 0.05" in d.reasons[0]


def test_too_little_evidence_extends_and_at_the_budget_rolls_back(same: pd.DataFrame) -> None:
    early = evidence(same, limit=150)
    d = decide(early, ROLLOUT, final=False)
    assert d.decision == "extend"
    assert any("undecided" in m.status for m in d.metrics)
    end = decide(early, ROLLOUT, final=True)
    assert end.decision == "rollback"
    assert "evidence budget spent after 150 routed requests" in end.reasons[0]
    promote_on_budget = ROLLOUT.model_copy(update={"on_budget": "promote"})
    assert decide(early, promote_on_budget, final=True).decision == "promote"


def test_a_worse_challenger_is_rolled_back_as_inferior() -> None:
    d = decide(evidence(capture(3000, chall_shift=1.2, seed=2)), ROLLOUT, final=False)
    assert d.decision == "rollback"
    status = {m.metric: m.status for m in d.metrics}
    assert status["log_loss"] == "inferior"
    assert status["calibration"] == "inferior"
    assert any("log loss" in r and "INFERIOR" in r for r in d.reasons)


def test_a_slow_challenger_is_inferior_on_latency() -> None:
    d = decide(evidence(capture(800, chall_ms=20.0, seed=3)), ROLLOUT, final=False)
    assert d.decision == "rollback"
    assert {m.metric: m.status for m in d.metrics}["latency"] == "inferior"


def test_an_error_rate_breach_is_a_hard_guard() -> None:
    d = decide(evidence(capture(80, chall_error=0.5, seed=4)), ROLLOUT, final=False)
    assert d.decision == "rollback"
    assert d.guard is not None
    assert d.guard.startswith("hard guard: challenger error rate")


def test_a_broken_split_halts_before_anything_is_judged() -> None:
    skewed = capture(2000, weight=0.7, seed=5)  # the registry says 50 %
    d = decide(evidence(skewed), ROLLOUT, final=False)
    assert d.decision == "halt"
    assert d.srm.mismatch
    assert "sample-ratio mismatch" in d.reasons[0]


def test_shadow_mode_compares_log_loss_per_row() -> None:
    frame = capture(600, weight=1.0, chall_shift=0.05, seed=6, mode="shadow")
    ev = gather_evidence(frame, "1", "2", "shadow", 100, 0.5)
    assert ev.paired_log_loss is not None
    assert ev.paired_log_loss.n == ev.challenger.labeled == ev.champion.labeled
    d = decide(ev, ROLLOUT, final=False)
    log_loss = next(m for m in d.metrics if m.metric == "log_loss")
    assert log_loss.comparison == "paired"
    unpaired = decide(
        CanaryEvidence.from_dict({**ev.to_dict(), "paired_log_loss": None}), ROLLOUT, False
    )
    wide = next(m for m in unpaired.metrics if m.metric == "log_loss")
    assert log_loss.bounds is not None
    assert wide.bounds is not None
    assert log_loss.bounds.half_width < wide.bounds.half_width / 3  # pairing removes row noise


def test_a_stored_decision_replays_to_the_same_answer(same: pd.DataFrame, tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path)
    d = decide(evidence(same, limit=600), ROLLOUT, final=True)
    record = record_rollout(d, looks=3, settings=settings)
    stored = get_decision(record["id"][:12], settings)
    assert stored["inputs"]["evidence"]["routed"] == 600
    assert stored["settings"]["alpha"] == ROLLOUT.alpha
    out = replay(stored)
    assert out["same"], out
    assert out["replayed"]["decision"] == d.decision
    tampered = {**stored, "settings": {**stored["settings"], "log_loss_margin": 0.0001}}
    assert replay(tampered)["replayed"]["reasons"] != out["replayed"]["reasons"]
    assert [r["id"] for r in list_decisions(settings, kind="rollout")] == [record["id"]]


def test_cli_lists_shows_and_replays_decisions(
    same: pd.DataFrame, make_settings: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from driftloop.cli import main
    from driftloop.loop.decisions import decisions_path

    settings = make_settings()
    record = record_rollout(decide(evidence(same), ROLLOUT, final=False), 1, settings)
    main(["decisions", "list"])
    assert record["id"] in capsys.readouterr().out
    main(["decisions", "replay", record["id"]])
    assert '"same": true' in capsys.readouterr().out
    # an edited record no longer replays to what it claims: exit 1, one readable line
    path = decisions_path(settings)
    path.write_text(path.read_text().replace('"decision": "promote"', '"decision": "rollback"'))
    with pytest.raises(SystemExit) as exc:
        main(["decisions", "replay", record["id"]])
    assert exc.value.code == 1
    assert "differs from the stored one" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["decisions", "show", "dec-nope"])
    assert "no decision records match 'dec-nope'" in capsys.readouterr().err
