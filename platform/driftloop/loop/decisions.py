"""Decision records: every automatic decision, with what it was decided on, replayable.

Each monitor verdict and each rollout decision appends one JSON line to
``{state}/decisions/decisions.jsonl``::

    {"id": "dec-20261130T221501-3fa2c1", "kind": "rollout" | "monitor", "created": ISO,
     "model": name, "versions": {...}, "decision": ..., "reason": ...,
     "inputs": {...}, "settings": {...}, "kpi": {...}, "outputs": {...}}

``inputs`` hold everything the decision function reads (the window, row and label counts, and
the sufficient statistics or intervals it compared), ``settings`` the section of the settings it
applied, ``kpi`` the KPIs (``settings.kpi``) it decided against (records from before the KPI
section hold them in ``settings`` under the old names), ``outputs`` the statistics and the
decision. :func:`replay` runs the same pure decision
function (:func:`driftloop.monitoring.noninferiority.decide`,
:func:`driftloop.monitoring.judge.judge`) on the stored inputs and settings and says whether it
reaches the same decision and reasons, so a decision can be checked long after the traffic is
gone (``driftloop decisions list|show|replay``).
"""

from __future__ import annotations

import json
import logging
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from driftloop.errors import ConflictError, NotFoundError
from driftloop.monitoring import judge as monitor_rule
from driftloop.monitoring import noninferiority as canary_rule
from driftloop.monitoring.canary import CanaryEvidence, gather_evidence, read_rollout_frame
from driftloop.monitoring.judge import DriftVerdict, JudgeInputs, judge
from driftloop.monitoring.noninferiority import CanaryDecision, decide
from driftloop.settings import (
    KpiSettings,
    MonitoringSettings,
    RolloutSettings,
    Settings,
    get_settings,
)

logger = logging.getLogger(__name__)

KINDS = ("rollout", "monitor")


def decisions_path(settings: Settings | None = None) -> Path:
    return (settings or get_settings()).state / "decisions" / "decisions.jsonl"


def new_decision_id(now: datetime | None = None) -> str:
    """A fresh record id (time-ordered, with a random tail)."""
    now = now or datetime.now(UTC)
    return f"dec-{now.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(3)}"


def _append(record: dict[str, Any], settings: Settings) -> dict[str, Any]:
    path = decisions_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(record, default=str, sort_keys=True) + "\n")
    return record


def record_rollout(
    decision: CanaryDecision,
    looks: int,
    settings: Settings | None = None,
    record_id: str | None = None,
    applied: bool | None = None,
    error: str | None = None,
    started: str | None = None,
) -> dict[str, Any]:
    """Store a rollout decision; returns the record (with its ``id``). ``applied`` says whether
    the registry took it (False with the ``error`` when it refused or failed)."""
    settings = settings or get_settings()
    now = datetime.now(UTC)
    ev = decision.evidence
    outputs = decision.to_dict()
    evidence = outputs.pop("evidence")
    return _append(
        {
            "id": record_id or new_decision_id(now),
            "kind": "rollout",
            "rule": canary_rule.RULE,
            "created": now.isoformat(),
            "model": settings.mlflow.registered_model,
            "versions": {"champion": ev.champion.version, "challenger": ev.challenger.version},
            "decision": decision.decision,
            "reason": decision.reason,
            "applied": applied,
            "error": error,
            "inputs": {
                "evidence": evidence,
                "final": decision.final,
                "looks": looks,
                "window": [ev.first_ts, ev.last_ts],
                "rollout_started": started,
            },
            "settings": settings.rollout.model_dump(mode="json"),
            "kpi": settings.kpi.model_dump(mode="json"),
            "outputs": outputs,
        },
        settings,
    )


def record_monitor(
    model: str,
    version: str,
    window: dict[str, Any],
    inputs: JudgeInputs,
    verdict: DriftVerdict,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Store a monitor verdict; returns the record (with its ``id``)."""
    settings = settings or get_settings()
    now = datetime.now(UTC)
    return _append(
        {
            "id": new_decision_id(now),
            "kind": "monitor",
            "rule": monitor_rule.RULE,
            "created": now.isoformat(),
            "model": model,
            "versions": {"judged": version},
            "decision": "retrain" if verdict.retrain else verdict.status,
            "reason": verdict.reason,
            "inputs": {"window": window, "judge": inputs.to_dict()},
            "settings": settings.monitoring.model_dump(mode="json"),
            "kpi": settings.kpi.model_dump(mode="json"),
            "outputs": verdict.to_dict(),
        },
        settings,
    )


def list_decisions(
    settings: Settings | None = None, kind: str | None = None, limit: int | None = None
) -> list[dict[str, Any]]:
    """Stored records, oldest first (the last ``limit`` when given), optionally of one kind."""
    path = decisions_path(settings)
    if not path.exists():
        return []
    records = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:  # a writer killed mid-line: skip it, keep the rest
            logger.warning("skipping unreadable line %d of %s", n, path)
            continue
        if isinstance(record, dict) and (kind is None or record.get("kind") == kind):
            records.append(record)
    return records[-limit:] if limit else records


def get_decision(decision_id: str, settings: Settings | None = None) -> dict[str, Any]:
    """One record by id (or a unique prefix of it); 404 when none or several match."""
    matches = [r for r in list_decisions(settings) if str(r.get("id")).startswith(decision_id)]
    if not matches:
        raise NotFoundError(f"no decision records match {decision_id!r}")
    if len(matches) > 1:
        raise ConflictError(f"{len(matches)} decision records match {decision_id!r}: give more")
    return matches[0]


def _kpis(record: dict[str, Any]) -> KpiSettings | None:
    """The KPIs a record was decided against (None: a record from before the KPI section,
    whose ``settings`` hold them under the old names)."""
    stored = record.get("kpi")
    return KpiSettings.model_validate(stored) if isinstance(stored, dict) else None


def replay(record: dict[str, Any]) -> dict[str, Any]:
    """Recompute a stored decision from its stored inputs, settings and KPIs."""
    kind = record.get("kind")
    if kind == "rollout":
        evidence = CanaryEvidence.from_dict(record["inputs"]["evidence"])
        rollout = RolloutSettings.model_validate(record["settings"])
        again = decide(evidence, rollout, bool(record["inputs"]["final"]), _kpis(record))
        decision: str = again.decision
        reasons = list(again.reasons)
    elif kind == "monitor":
        inputs = JudgeInputs.from_dict(record["inputs"]["judge"])
        monitoring = MonitoringSettings.model_validate(record["settings"])
        verdict = judge(inputs, monitoring, _kpis(record))
        decision = "retrain" if verdict.retrain else verdict.status
        reasons = list(verdict.reasons)
    else:
        raise NotFoundError(f"decision record {record.get('id')} has unknown kind {kind!r}")
    stored_reasons = list(record["outputs"].get("reasons", []))
    if kind == "rollout" and record["outputs"].get("reasons") is not None:
        # a time-budget note is added by the rollout loop, not by the decision function
        stored_reasons = [r for r in stored_reasons if not r.startswith("time budget of ")]
    rule = canary_rule.RULE if kind == "rollout" else monitor_rule.RULE
    out = {
        "id": record["id"],
        "kind": kind,
        "rule": {"recorded": record.get("rule"), "now": rule},
        "stored": {"decision": record["decision"], "reasons": stored_reasons},
        "replayed": {"decision": decision, "reasons": reasons},
        "same": decision == record["decision"] and reasons == stored_reasons,
    }
    if record.get("rule") != rule:
        out["note"] = (
            f"recorded under rule {record.get('rule')}, replayed under {rule}: a difference "
            "may be the rule's change, not the data's"
        )
    return out


def replay_from_log(record: dict[str, Any], settings: Settings | None = None) -> dict[str, Any]:
    """Re-gather a rollout decision's evidence from the inference log (the same first routed
    requests since the rollout started) and decide again under the stored settings. Labels that
    arrived after the decision make it differ; so does a log that was changed."""
    settings = settings or get_settings()
    if record.get("kind") != "rollout":
        raise NotFoundError(f"{record.get('id')} is not a rollout decision: nothing to re-gather")
    stored = record["inputs"]["evidence"]
    rollout = RolloutSettings.model_validate(record["settings"])
    frame = read_rollout_frame(settings, record["inputs"].get("rollout_started"))
    last = record["inputs"]["window"][1]
    evidence = gather_evidence(
        frame,
        record["versions"]["champion"],
        record["versions"]["challenger"],
        stored["mode"],
        int(stored["weight"]),
        rollout.latency_floor_ms,
        limit=int(stored["routed"]),
        until=last,
        latency_budget_ms=stored.get("latency_budget_ms"),
    )
    again = decide(evidence, rollout, bool(record["inputs"]["final"]), _kpis(record))
    same_evidence = evidence.routed == stored["routed"] and evidence.last_ts == last
    return {
        "id": record["id"],
        "from": "inference log",
        "evidence": {
            "routed": [stored["routed"], evidence.routed],
            "challenger_labeled": [stored["challenger"]["labeled"], evidence.challenger.labeled],
            "same_requests": same_evidence,
        },
        "stored": {"decision": record["decision"]},
        "replayed": {"decision": again.decision, "reasons": again.reasons},
        "same": same_evidence and again.decision == record["decision"],
    }
