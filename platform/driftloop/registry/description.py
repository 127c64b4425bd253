"""The "why" of a model version, where MLflow's UI shows it first: the version's description,
rendered from its tags, and the tags that say where the version stands now.

The description says, in a few Markdown lines: where the version stands, the training gate's
decision and reason, the outcome of its rollout and why (updated when it happens: rollout
start, promote, rollback, restore, replaced as champion), data revision and window, git
commit, and links to the Prefect flow runs, the drift report and the model card (whatever
URL the tags hold: :data:`LINK_TAGS`; a ``runs:/`` artifact becomes its MLflow UI page). It is
rendered from the tags alone (:func:`render`), so it is rewritten whole at every change and
never drifts from them.

Tags of a version's standing (kept current by :func:`record_change`, called by the registry's
one writer, :mod:`driftloop.registry.promotion`, after every audited change):

========================  ===================================================================
``driftloop.gate``        where the version stands now: the gate's decision at registration
                          (``champion``, ``challenger``, ``rejected``), then ``champion``
                          (promoted, restored), ``rolled_back``, ``retired`` (another version
                          replaced it as champion) or ``superseded`` (another challenger took
                          its place before its rollout ended)
``driftloop.gate_decision``  the training gate's decision, never changed afterwards
``driftloop.rollout``     the last rollout event: ``canary``, ``promoted``, ``rolled_back``,
                          ``restored``, ``replaced``, ``superseded``
``driftloop.rollout_reason``  its reason, as audited (with the decision record's id)
``driftloop.rollout_at``  its time (UTC ISO), the audit record's ``ts``
========================  ===================================================================

The writes go through the registry writers' identity (:func:`client._write_version_notes`): the
rollout MLflow user may edit model versions but not runs, so everything here lives on the
version. Writing notes never fails or undoes the change it describes: a failure is logged and
returned (``description_error``).
"""

from __future__ import annotations

import logging
from typing import Any

from driftloop.registry import client
from driftloop.registry.links import artifact_links
from driftloop.registry.tracking import (
    TAG_COMPARED_WITH,
    TAG_DATA_REV,
    TAG_GATE,
    TAG_GATE_REASON,
    TAG_GIT_COMMIT,
    TAG_HOLDOUT_MONTH,
    TAG_TRAIN_WINDOW,
)
from driftloop.settings import Settings

logger = logging.getLogger(__name__)

TAG_GATE_DECISION = "driftloop.gate_decision"
TAG_ROLLOUT = "driftloop.rollout"
TAG_ROLLOUT_REASON = "driftloop.rollout_reason"
TAG_ROLLOUT_AT = "driftloop.rollout_at"
#: The Prefect flow run that trained the version, and the one that rolled it out (UI URLs).
TAG_PREFECT_RUN = "driftloop.prefect_run"
TAG_ROLLOUT_PREFECT_RUN = "driftloop.rollout_prefect_run"
#: The champion's latest drift report when this version was trained (what led to the retrain).
TAG_CHAMPION_DRIFT_REPORT = "driftloop.champion_drift_report"
#: The version's own latest drift report (the monitor's tag, once it served).
TAG_DRIFT_REPORT = "driftloop.drift.report"
TAG_MODEL_CARD = "driftloop.model_card"
TAG_PROMOTION_CARD = "driftloop.promotion_card"
#: Links shown in the description: (label, tag), in this order.
LINK_TAGS = (
    ("training run (Prefect)", TAG_PREFECT_RUN),
    ("rollout run (Prefect)", TAG_ROLLOUT_PREFECT_RUN),
    ("drift report", TAG_DRIFT_REPORT),
    ("drift report that led to this training", TAG_CHAMPION_DRIFT_REPORT),
    ("model card", TAG_MODEL_CARD),
    ("promotion card", TAG_PROMOTION_CARD),
)
#: Longest reason shown in the description (the tags and the audit log hold it whole).
REASON_CHARS = 500

_STANDING = {
    "champion": "champion: serves all traffic not routed to a challenger",
    "challenger": "challenger: may take canary traffic",
    "rejected": "rejected by the training gate: never served",
    "rolled_back": "rolled back: out of serving",
    "retired": "retired: another version replaced it as champion",
    "superseded": "superseded: another challenger took its place",
}


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= REASON_CHARS else text[: REASON_CHARS - 1] + "…"


def _link(label: str, value: str) -> str:
    if value.startswith(("http://", "https://")):
        return f"[{label}]({value})"
    return f"{label} `{value}`"


def render(tags: dict[str, str], aliases: tuple[str, ...] = ()) -> str:
    """The description of a version with ``tags`` (Markdown, a few lines)."""
    standing = tags.get(TAG_GATE, "unknown")
    decision = tags.get(TAG_GATE_DECISION, standing)
    now = _STANDING.get(standing, standing)
    alias_text = f" (aliases: {', '.join(aliases)})" if aliases else ""
    lines = [f"**Now:** {now}{alias_text}."]
    compared = tags.get(TAG_COMPARED_WITH, "none")
    against = f" against champion v{compared}" if compared not in ("", "none") else ""
    lines.append(
        f"**Gate:** {decision}{against}: {_short(tags.get(TAG_GATE_REASON, 'not recorded'))}"
    )
    rollout = tags.get(TAG_ROLLOUT)
    if rollout:
        when = tags.get(TAG_ROLLOUT_AT, "")
        at = f" at {when[:19].replace('T', ' ')} UTC" if when else ""
        reason = _short(tags.get(TAG_ROLLOUT_REASON, ""))
        lines.append(f"**Rollout:** {rollout}{at}" + (f": {reason}" if reason else ""))
    else:
        lines.append("**Rollout:** none yet.")
    lines.append(
        f"**Data:** revision `{tags.get(TAG_DATA_REV, '?')}`, window "
        f"{tags.get(TAG_TRAIN_WINDOW, '?')}, holdout {tags.get(TAG_HOLDOUT_MONTH, '?')}. "
        f"**Code:** git commit `{tags.get(TAG_GIT_COMMIT, '?')}`."
    )
    links = [_link(label, tags[key]) for label, key in LINK_TAGS if tags.get(key)]
    if links:
        lines.append("**Links:** " + " · ".join(links) + ".")
    # two trailing spaces: a line break in MLflow's Markdown, one paragraph per version
    return "  \n".join(lines)


def _browsable(tags: dict[str, str], settings: Settings) -> dict[str, str]:
    """The link tags that hold a ``runs:/<run>/<path>`` artifact (model and promotion cards),
    as the MLflow UI pages that show them: a description links what a browser opens. A run
    that cannot be looked up keeps its ``runs:/`` text."""
    out: dict[str, str] = {}
    experiments: dict[str, str] = {}
    for _, key in LINK_TAGS:
        value = tags.get(key, "")
        run_id, _, path = value.removeprefix("runs:/").partition("/")
        if not value.startswith("runs:/") or not run_id or not path:
            continue
        try:
            links = artifact_links(run_id, path, settings, experiments.get(run_id))
        except Exception as exc:  # a link is not worth failing the description for
            logger.info("no UI link for %s: %s", value, exc)
            continue
        experiments[run_id] = links.run.split("/experiments/")[1].split("/")[0]
        out[key] = links.view
    return out


def describe(
    version: str,
    settings: Settings,
    tags: dict[str, str] | None = None,
    name: str | None = None,
) -> str:
    """Set ``tags`` on ``version`` and rewrite its description from all its tags (as the
    registry writers' identity); returns the description."""
    info = client.get_version(version, settings, name)
    merged = {**info.tags, **(tags or {})}
    text = render({**merged, **_browsable(merged, settings)}, info.aliases)
    client._write_version_notes(version, dict(tags or {}), text, settings, name)
    return text


def _standing_change(
    record: dict[str, Any],
) -> dict[str, dict[str, str]]:
    """The tags each version touched by an audited change gets (by version)."""
    action, reason, at = record.get("action"), str(record.get("reason") or ""), record.get("ts")
    old, new = record.get("from_version"), record.get("to_version")
    old = str(old) if old else None
    new = str(new) if new else None
    stamp = {TAG_ROLLOUT_AT: str(at or "")}
    out: dict[str, dict[str, str]] = {}

    def put(version: str | None, standing: str | None, event: str, why: str) -> None:
        if version is None:
            return
        tags = {**stamp, TAG_ROLLOUT: event, TAG_ROLLOUT_REASON: why[:4000]}
        if standing is not None:
            tags[TAG_GATE] = standing
        out[version] = tags

    if action == "rollout_start" and new:
        weight = record.get("weight_after")
        put(new, None, "canary", f"canary at {weight} % of traffic: {reason}")
    elif action == "promote":
        put(new, "champion", "promoted", reason)
        if old and old != new:
            put(old, "retired", "replaced", f"replaced as champion by v{new}: {reason}")
    elif action == "rollback":
        put(old, "rolled_back", "rolled_back", reason)
    elif action in ("restore", "demo_reset"):
        event = "restored" if action == "restore" else "reset"
        put(new, "champion", event, reason)
        if old and old != new:
            put(old, "retired", "replaced", f"champion set back to v{new}: {reason}")
        dropped = (record.get("metrics") or {}).get("dropped_challenger")
        if dropped and str(dropped) not in (old, new):
            put(str(dropped), "rolled_back", "rolled_back", f"dropped by the {action}: {reason}")
    elif action == "register_champion":
        if old and old != new:
            put(old, "retired", "replaced", f"replaced as champion by v{new}: {reason}")
    elif action == "register_challenger" and old and old != new:
        put(old, "superseded", "superseded", f"challenger replaced by v{new}: {reason}")
    return out


def record_change(record: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """Bring the standing tags and the description of every version an audited change touched
    up to date. Never raises: returns ``{"description_error": ...}`` on a failure, else {}."""
    if record.get("error"):
        return {}
    changes = _standing_change(record)
    errors = []
    for version, tags in changes.items():
        try:
            current = client.get_version(version, settings, record.get("model"))
            if TAG_GATE_DECISION not in current.tags and TAG_GATE in current.tags:
                # the gate's own decision is kept before the standing overwrites it
                tags = {TAG_GATE_DECISION: current.tags[TAG_GATE], **tags}
            describe(version, settings, tags, record.get("model"))
        except Exception as exc:  # the change happened; its description must not undo it
            errors.append(f"v{version}: {type(exc).__name__}: {exc}"[:300])
    if errors:
        logger.warning("could not update version descriptions: %s", "; ".join(errors))
        return {"description_error": "; ".join(errors)[:1000]}
    return {}
