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
from driftloop.sequential import sample_ratio_mismatch
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
                        "routing_key": rid,
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
    # the evidence starts at the challenger's first request (before it, serving had not yet
    # read the weight: the split was not running)
    first = same.loc[same["variant"] == "challenger", "request_id"].min()
    assert ev.available == 3000 - int(first.removeprefix("r"))
    assert ev.champion.requests + ev.challenger.requests == 1000
    assert ev.treated == ev.challenger.requests
    assert ev.challenger.labeled == 20 * ev.challenger.requests
    start = int(first.removeprefix("r"))
    assert ev.first_ts == pd.Timestamp(T0 + timedelta(milliseconds=10 * start)).isoformat()
    assert ev.last_ts == pd.Timestamp(T0 + timedelta(milliseconds=10 * (start + 999))).isoformat()
    # the same prefix whatever else arrived later: the look is reproducible
    again = evidence(same.head(20 * 1200), limit=1000).to_dict()
    whole = evidence(same, limit=1000).to_dict()
    assert again.pop("available") == whole.pop("available") - 1800
    assert again == whole


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


def test_latency_is_judged_per_row_so_huge_batches_do_not_make_a_variant_look_slow() -> None:
    """A routed caller can send its largest batches to whichever variant answers them (the
    split is by key): 20x the rows at 20x the model time is the same speed per row."""
    base = capture(800, rows=2, seed=7)
    # one model time per request, as serving captures it
    base["model_ms"] = base.groupby(["variant", "request_id"])["model_ms"].transform("max")
    champ, chall = base[base["variant"] == "champion"], base[base["variant"] == "challenger"]
    copies = []
    for k in range(20):
        row = chall["row"] + 2 * k
        copies.append(
            chall.assign(row=row, prediction_id=chall["request_id"] + ":" + row.astype(str))
        )
    batched = pd.concat([champ, *copies]).assign(
        model_ms=lambda f: f["model_ms"].where(f["variant"] == "champion", f["model_ms"] * 20)
    )
    ev = gather_evidence(batched.sort_values("ts", kind="stable"), "1", "2", "canary", 50, 0.01)
    assert ev.challenger.rows == 40 * ev.challenger.requests
    # per request the challenger looks 20x slower; per row it is as fast as the champion
    slow, fast = ev.challenger.p95_model_ms, ev.champion.p95_model_ms
    assert slow is not None
    assert fast is not None
    assert slow > 10 * fast
    assert abs(ev.challenger.latency.mean - ev.champion.latency.mean) < np.log(1.1)
    latency_only = ROLLOUT.model_copy(update={"metrics": ["latency"]})
    d = decide(ev, latency_only, final=False)
    assert {m.metric: m.status for m in d.metrics} == {"latency": "non_inferior"}


def test_an_error_rate_breach_is_a_hard_guard() -> None:
    d = decide(evidence(capture(80, chall_error=1.0, seed=4)), ROLLOUT, final=False)
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
    # one paired observation per request (the mean of its rows' differences)
    assert ev.paired_log_loss.n == ev.challenger.requests == ev.champion.requests
    assert ev.challenger.labeled == ev.champion.labeled == 5 * ev.challenger.requests
    d = decide(ev, ROLLOUT, final=False)
    log_loss = next(m for m in d.metrics if m.metric == "log_loss")
    assert log_loss.comparison == "paired"
    calibration = next(m for m in d.metrics if m.metric == "calibration")
    assert calibration.comparison == "paired"
    unpaired_ev = {**ev.to_dict(), "paired_log_loss": None, "paired_shift": None}
    unpaired = decide(CanaryEvidence.from_dict(unpaired_ev), ROLLOUT, False)
    for name, paired in (("log_loss", log_loss), ("calibration", calibration)):
        wide = next(m for m in unpaired.metrics if m.metric == name)
        assert paired.bounds is not None
        assert wide.bounds is not None
        assert paired.bounds.half_width < wide.bounds.half_width / 3  # no row noise


@pytest.mark.parametrize(
    ("m", "d"),
    [((-0.2, -0.1), (0.01, 0.03)), ((-0.05, 0.04), (-0.02, 0.06)), ((0.1, 0.3), (-0.4, -0.35))],
)
def test_the_paired_gap_change_range_contains_every_value_in_the_box(
    m: tuple[float, float], d: tuple[float, float]
) -> None:
    from driftloop.monitoring.noninferiority import _gap_change_range

    low, high = _gap_change_range(m, d)
    grid_m, grid_d = np.meshgrid(np.linspace(*m, 401), np.linspace(*d, 401))
    values = np.abs(grid_m + grid_d) - np.abs(grid_m)
    assert low <= values.min() + 1e-12
    assert high >= values.max() - 1e-12
    assert values.min() - low < 1e-3  # and it is tight
    assert high - values.max() < 1e-3


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


def test_a_request_id_used_twice_is_no_evidence(same: pd.DataFrame) -> None:
    """Two requests sent with one id cannot be told apart (their rows would pair with each
    other's): both are left out."""
    rid = same["request_id"].drop_duplicates().iloc[40]
    again = same[same["request_id"] == rid].assign(ts=lambda f: f["ts"] + timedelta(seconds=60))
    ev = evidence(pd.concat([same, again]))
    assert ev.excluded == 1
    assert ev.available == evidence(same).available - 1


def test_the_sample_ratio_check_counts_routing_keys_not_requests(same: pd.DataFrame) -> None:
    """Routing is sticky by key: keys are the coin flips. Here the challenger's 150 keys send
    ten requests each and the champion's 150 keys one each: per request the split looks
    broken (91 %), per key it is the configured 50 %."""
    treated = same[same["variant"] == "challenger"]
    treated_ids = treated["request_id"].drop_duplicates().head(1500).tolist()
    keys = {rid: f"t{i // 10}" for i, rid in enumerate(treated_ids)}
    control_ids = same.loc[same["variant"] == "champion", "request_id"].drop_duplicates()
    keys.update({rid: f"c{i}" for i, rid in enumerate(control_ids.head(150))})
    frame = same[same["request_id"].isin(keys)].assign(
        routing_key=lambda f: f["request_id"].map(keys)
    )
    ev = gather_evidence(frame, "1", "2", "canary", 50, 0.5)
    assert ev.treated_keys == 150
    assert 295 <= ev.keys <= 300  # champion requests before the challenger's first are left out
    assert sample_ratio_mismatch(ev.treated, ev.routed, 0.5, 0.001).mismatch  # per request
    assert not decide(ev, ROLLOUT, final=False).srm.mismatch  # per key


def test_replay_from_the_inference_log_regathers_the_same_evidence(
    same: pd.DataFrame, tmp_path: Path
) -> None:
    """The capture on disk (predictions and feedback files, as serving writes them) gives the
    same first requests and the same decision; a label changed afterwards makes it differ."""
    from driftloop.data.capture import PREDICTION_COLUMNS
    from driftloop.loop.decisions import replay_from_log

    settings = Settings(state_dir=tmp_path)
    day = tmp_path / "capture"
    frame = same.head(20 * 800)
    preds = frame.reindex(columns=PREDICTION_COLUMNS)
    preds["model_name"] = "m"
    feedback = frame[["prediction_id", "request_id", "row", LABEL, "ts"]].astype({LABEL: "int8"})
    for kind, df in (("predictions", preds), ("feedback", feedback)):
        folder = day / kind / f"date={T0.date().isoformat()}"
        folder.mkdir(parents=True)
        df.to_parquet(folder / "part-0.parquet", index=False)
    d = decide(evidence(frame, limit=600), ROLLOUT, final=True)
    record = record_rollout(d, 3, settings, started=T0.isoformat())
    out = replay_from_log(record, settings)
    assert out["evidence"]["same_requests"]
    assert out["same"], out
    flipped = feedback.assign(**{LABEL: 1 - feedback[LABEL]})
    flipped.to_parquet(day / "feedback" / f"date={T0.date().isoformat()}" / "part-0.parquet")
    assert replay_from_log(record, settings)["replayed"]["reasons"] != out["replayed"]["reasons"]
