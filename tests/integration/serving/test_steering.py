"""A client with a predict token tries to steer the loop through a real ``python -m serving``
(uvicorn on 127.0.0.1, real MLflow registry, real capture folder): force a rollback, a promotion
or a retrain through labels, routing keys and pinned version calls.

What serves and the rollout decision computed from the capture (the canary evidence of
:mod:`driftloop.monitoring.canary`, the decision of :mod:`driftloop.monitoring.noninferiority`)
must not change, the monitor's judge (:mod:`driftloop.monitoring.judge`) must not call for a
retrain on the poisoned window, and the attempt must be visible (conflicts by labeler, rejected
label calls in ``/metrics``). Each defence is shown to matter: had the later labels won, the
same computations would have rolled back the challenger and called for a retrain."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from polling import wait_for

from driftloop.data.capture import feedback_conflicts, read_predictions
from driftloop.monitoring.canary import gather_evidence, read_rollout_frame
from driftloop.monitoring.judge import JudgeInputs, judge
from driftloop.monitoring.noninferiority import decide
from driftloop.monitoring.performance import calibration_gap, observed_roc_auc
from driftloop.registry.client import get_alias
from driftloop.registry.integrity import register_verified_version
from driftloop.registry.promotion import assign_alias_after_gate, set_weight
from driftloop.schema import LABEL, OUTPUT_PROBABILITY
from driftloop.settings import MonitoringSettings, RolloutSettings, Settings
from serving.examples import features_request

pytestmark = pytest.mark.integration

TOKENS = {
    "admin_tokens": ["admin-steering-secret"],
    "predict_tokens": ["app-predict-secret"],
    "feedback_tokens": ["labels-honest-secret", "labels-stolen-secret"],
}
APP = {"Authorization": "Bearer app-predict-secret"}  # what the attacker holds
LABELS = {"Authorization": "Bearer labels-honest-secret"}  # the ground-truth pipeline
STOLEN = {"Authorization": "Bearer labels-stolen-secret"}  # a leaked feedback token
ROLLOUT = RolloutSettings(min_requests=20, min_labeled_rows=100, max_requests=4000)
MONITOR = MonitoringSettings(min_rows=100, min_labeled_rows=100)
WEIGHT, REQUESTS, ROWS = 50, 80, 10


def _decision(settings: Settings, since: datetime, v1: str, v2: str, frame: Any = None) -> Any:
    """Evidence and decision of the canary from the capture (or from ``frame``)."""
    frame = read_rollout_frame(settings, since) if frame is None else frame
    floor = ROLLOUT.latency_floor_ms
    ev = gather_evidence(frame, v1, v2, "canary", WEIGHT, floor)
    return ev, decide(ev, ROLLOUT, final=False)


def _retrain(frame: pd.DataFrame) -> bool:
    """The monitor's judge on the served, labelled rows of ``frame`` (observed AUC and
    calibration gap against the KPI; drift is not what labels steer)."""
    served = frame[frame["served"].astype(bool) & frame[LABEL].notna()]
    y = served[LABEL].to_numpy(dtype=float)
    p = served[OUTPUT_PROBABILITY].to_numpy(dtype=float)
    auc, gap = observed_roc_auc(y, p), calibration_gap(y, p)
    assert auc is not None
    assert gap is not None
    inputs = JudgeInputs(
        rows=len(served),
        labeled=len(served),
        observed_auc=auc.to_dict(),
        calibration_gap=gap.to_dict(),
    )
    return judge(inputs, MONITOR).retrain


def _summary(decision: Any) -> tuple[str, list[tuple[str, str]]]:
    return decision.decision, [(m.metric, m.status) for m in decision.metrics]


def test_a_predict_token_cannot_steer_rollout_or_retrain(
    serving_settings: Callable[..., Settings],
    logged_models: dict[str, str],
    server: Callable[[Settings], Any],
) -> None:
    settings = serving_settings(serving={"auth": {"enabled": True, **TOKENS}})
    versions = []
    for kind, alias in (("good", "champion"), ("better", "challenger")):
        info = register_verified_version(logged_models[kind], None, {"kind": kind}, settings)
        assign_alias_after_gate(info.version, alias, "steering test", settings=settings)
        versions.append(info.version)
    v1, v2 = versions
    set_weight(WEIGHT, "test", "steering test", settings)
    proc = server(settings)
    name = settings.mlflow.registered_model
    base = f"/v2/models/{name}"
    since = datetime.now(UTC)
    rng = np.random.default_rng(11)
    with httpx.Client(base_url=proc.url, timeout=30) as client:
        wait_for(lambda: client.get("/v2/health/ready").json()["challenger"] == v2)
        served_before = client.get("/v2/health/ready").json()

        # honest routed traffic, labelled by the ground-truth pipeline (labels ~ Bernoulli(p))
        truth: dict[str, tuple[str, list[int]]] = {}
        for i in range(REQUESTS):
            rid = f"honest-{i:03d}"
            r = client.post(f"{base}/infer", json=features_request(ROWS, rid), headers=APP)
            assert r.status_code == 200, r.text
            out = r.json()
            p = np.asarray(out["outputs"][0]["data"])
            labels = (rng.random(ROWS) < p).astype(int).tolist()
            truth[rid] = (out["parameters"]["variant"], labels)
            fb = client.post(
                f"{base}/feedback", json={"request_id": rid, "labels": labels}, headers=LABELS
            )
            assert fb.json() == {"accepted": ROWS, "conflicts": 0}
        variants = {v for v, _ in truth.values()}
        assert variants == {"champion", "challenger"}

        def all_labelled() -> bool:
            log = read_predictions(settings)
            return int(log[LABEL].notna().sum()) == REQUESTS * ROWS

        wait_for(all_labelled, timeout=30, what="honest labels in the capture")
        ev0, d0 = _decision(settings, since, v1, v2)
        assert ev0.routed == REQUESTS
        assert _retrain(read_predictions(settings)) is False

        # 1. labels with the predict token: refused, naming the missing scope
        rid0 = next(iter(truth))
        r = client.post(
            f"{base}/feedback", json={"request_id": rid0, "labels": [0] * ROWS}, headers=APP
        )
        assert r.status_code == 403
        assert "feedback scope" in r.json()["error"]
        # 2. a stolen feedback token, for predictions never served: 404, nothing stored
        for body in (
            {"request_id": "forged-1", "labels": [1, 1]},
            {"prediction_ids": [f"{rid0}:0", "forged-2:0"], "labels": [1, 1]},
            {"prediction_ids": [f"{rid0}:{ROWS}"], "labels": [1]},
        ):
            r = client.post(f"{base}/feedback", json=body, headers=STOLEN)
            assert r.status_code == 404, r.text
        r = client.post(
            f"{base}/feedback",
            json={"request_id": rid0, "labels": [1] * (ROWS + 1)},
            headers=STOLEN,
        )
        assert r.status_code == 400
        assert "has 10 rows" in r.json()["error"]
        # 3. relabel every served prediction with the opposite label: challenger rows to force a
        #    rollback, champion rows to force a retrain (and a promotion)
        flipped: dict[str, list[int]] = {}
        for rid, (_, labels) in truth.items():
            flipped[rid] = [1 - y for y in labels]
            body = {"request_id": rid, "labels": flipped[rid]}
            r = client.post(f"{base}/feedback", json=body, headers=STOLEN)
            assert r.json() == {"accepted": ROWS, "conflicts": ROWS}

        def conflicts_on_disk() -> Any:
            found = feedback_conflicts(settings)
            return found if found.predictions == REQUESTS * ROWS else None

        found = wait_for(conflicts_on_disk, timeout=30, what="conflicting labels on disk")
        stolen = "token:" + hashlib.sha256(b"labels-stolen-secret").hexdigest()[:8]
        assert found.by_labeler == {stolen: REQUESTS * ROWS}
        poisoned = read_predictions(settings)
        ev1, d1 = _decision(settings, since, v1, v2)
        assert ev1.to_dict() == ev0.to_dict()
        assert _summary(d1) == _summary(d0)
        assert _retrain(poisoned) is False
        # the defence matters: had the later labels won, the challenger would be rolled back
        # and the monitor would call for a retrain
        by_request = poisoned["request_id"].map(flipped)
        last_wins = poisoned.assign(
            **{
                LABEL: [
                    labels[row] for labels, row in zip(by_request, poisoned["row"], strict=True)
                ]
            }
        )
        chall = last_wins["variant"] == "challenger"
        rollback_attempt = poisoned.copy()
        rollback_attempt.loc[chall, LABEL] = last_wins.loc[chall, LABEL]
        assert _decision(settings, since, v1, v2, rollback_attempt)[1].decision == "rollback"
        assert _retrain(last_wins) is True

        # 4. routing keys and pinned version calls: hard flights sent to the champion (their
        #    true labels make it look bad) and easy ones to the challenger, labelled truthfully
        for i in range(20):
            keyed = features_request(ROWS, f"keyed-{i}", routing_key=f"attacker-{i}")
            pinned = features_request(ROWS, f"pinned-{i}")
            for path, body in ((f"{base}/infer", keyed), (f"{base}/versions/{v1}/infer", pinned)):
                r = client.post(path, json=body, headers=APP)
                assert r.status_code == 200, r.text
                probs = r.json()["outputs"][0]["data"]
                adverse = [int(p < 0.5) for p in probs]  # the truth the attacker picked
                rid = body["id"]
                fb = client.post(
                    f"{base}/feedback", json={"request_id": rid, "labels": adverse}, headers=LABELS
                )
                assert fb.json() == {"accepted": ROWS, "conflicts": 0}

        def attack_labelled() -> bool:
            log = read_predictions(settings)
            return int(log[LABEL].notna().sum()) == (REQUESTS + 40) * ROWS

        wait_for(attack_labelled, timeout=30, what="the attacker's traffic in the capture")
        ev2, d2 = _decision(settings, since, v1, v2)
        assert ev2.excluded == ev0.excluded + 40  # served, but no evidence
        assert {**ev2.to_dict(), "excluded": ev0.excluded} == ev0.to_dict()
        assert _summary(d2) == _summary(d0)

        # what serves did not change, and the attempt is visible
        served_after = client.get("/v2/health/ready").json()
        keys = ("champion", "challenger", "canary_weight", "mode")
        assert {k: served_after[k] for k in keys} == {k: served_before[k] for k in keys}
        champion = get_alias("champion", settings)
        assert champion is not None
        assert champion.version == v1
        metrics = client.get("/metrics").text
        assert 'driftloop_feedback_rejected_total{reason="forbidden"} 1.0' in metrics
        assert 'driftloop_feedback_rejected_total{reason="unknown_prediction"} 3.0' in metrics
        assert 'driftloop_feedback_rejected_total{reason="invalid"} 1.0' in metrics
        assert f"driftloop_feedback_conflicts_total {float(REQUESTS * ROWS)}" in metrics
