"""The champion-vs-challenger card written when a challenger is promoted: the two versions' key
metrics side by side (each on its own holdout, and both on the challenger's holdout when the
challenger was evaluated against this champion), the canary evidence the promotion was decided
on, and the decision with its audit record.

Logged to the new champion's run as ``model_card/promotion-v<old>-v<new>.md`` and ``.json``, with
the version tag ``driftloop.promotion_card`` pointing at the Markdown. It lives in the registry
package because :func:`driftloop.registry.promotion.promote` writes it (the layers contract keeps
the registry below training). Writing it never undoes or fails a promotion that happened: a
failure is logged and returned in the promotion's result (``promotion_card_error``).
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from driftloop.registry.client import (
    VersionInfo,
    get_run_data,
    get_version,
    log_run_files,
    set_version_tags,
)
from driftloop.settings import Settings

logger = logging.getLogger(__name__)

CARD_DIR = "model_card"
TAG_PROMOTION_CARD = "driftloop.promotion_card"
#: Holdout metrics shown side by side (run metrics ``holdout_<scorer>_<name>``).
METRICS = ("roc_auc", "log_loss", "brier", "ece", "precision", "recall", "cost_per_row")
#: Version tags shown side by side.
TAGS = (
    "driftloop.train_window",
    "driftloop.holdout_month",
    "driftloop.data_rev",
    "driftloop.gate",
    "driftloop.gate_reason",
    "driftloop.compared_with",
    "driftloop.model_card",
)


def card_name(replaced: str | None, promoted: str) -> str:
    """``promotion-v<old>-v<new>`` (``vnone`` when there was no champion)."""
    return f"promotion-v{replaced or 'none'}-v{promoted}"


def _number(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _side(info: VersionInfo, settings: Settings) -> dict[str, Any]:
    """What the card shows of one version: tags and its run's holdout metrics."""
    metrics: dict[str, float] = {}
    if info.run_id:
        _, _, metrics = get_run_data(info.run_id, settings)
    return {
        "version": info.version,
        "run_id": info.run_id,
        "tags": {key.removeprefix("driftloop."): info.tags.get(key) for key in TAGS},
        "own_holdout": {m: _number(metrics.get(f"holdout_model_{m}")) for m in METRICS},
        "_metrics": metrics,
    }


def build_promotion_card(
    replaced: str | None, promoted: str, record: dict[str, Any], settings: Settings
) -> dict[str, Any]:
    """The card as a JSON-able dict."""
    new = _side(get_version(promoted, settings), settings)
    old = _side(get_version(replaced, settings), settings) if replaced else None
    same_holdout = None
    new_metrics = new.pop("_metrics")
    if old is not None:
        old.pop("_metrics")
        if new["tags"].get("compared_with") == replaced:
            same_holdout = {
                "holdout_month": new["tags"]["holdout_month"],
                "challenger": {m: _number(new_metrics.get(f"holdout_model_{m}")) for m in METRICS},
                "champion": {m: _number(new_metrics.get(f"holdout_champion_{m}")) for m in METRICS},
            }
    return {
        "card_version": 1,
        "kind": "promotion",
        "model": settings.mlflow.registered_model,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "decision": {
            "action": record.get("action", "promote"),
            "summary": f"version {promoted} replaces version {replaced or 'none'} as champion",
            "reason": record.get("reason", ""),
            "actor": record.get("actor", ""),
            "audit_ts": record.get("ts"),
            "audit_hash": record.get("hash"),
        },
        "champion_before": old,
        "new_champion": new,
        "same_holdout": same_holdout,
        "canary_evidence": record.get("metrics") or {},
    }


def _f(value: Any) -> str:
    number = _number(value)
    return "n/a" if number is None else f"{number:.4f}"


def render_promotion_markdown(card: dict[str, Any]) -> str:
    """The card for people."""
    old, new, decision = card["champion_before"], card["new_champion"], card["decision"]
    old_label = f"v{old['version']} (champion before)" if old else "no champion before"
    lines = [
        f"# Promotion card: {card['model']} v{new['version']} replaces "
        f"{'v' + old['version'] if old else 'no champion'}",
        "",
        f"**Decision:** {decision['summary']}. Reason: {decision['reason'] or '(none given)'}",
        "",
        f"Actor {decision['actor']} · {card['created']} · audit record `{decision['audit_hash']}`",
        "",
        "## Versions side by side",
        "",
        f"| | {old_label} | v{new['version']} (new champion) |",
        "|---|---|---|",
    ]
    for key in (k.removeprefix("driftloop.") for k in TAGS):
        before = old["tags"].get(key) if old else ""
        lines.append(f"| {key} | {before or ''} | {new['tags'].get(key) or ''} |")
    for m in METRICS:
        before = _f(old["own_holdout"][m]) if old else ""
        lines.append(f"| holdout {m} (own holdout) | {before} | {_f(new['own_holdout'][m])} |")
    same = card["same_holdout"]
    if same:
        lines += [
            "",
            f"## Both on the same holdout ({same['holdout_month']}, at the challenger's "
            "evaluation)",
            "",
            "| metric | champion before | new champion | difference |",
            "|---|---:|---:|---:|",
        ]
        for m in METRICS:
            a, b = _number(same["champion"][m]), _number(same["challenger"][m])
            diff = "n/a" if a is None or b is None else f"{b - a:+.4f}"
            lines.append(f"| {m} | {_f(a)} | {_f(b)} | {diff} |")
    lines += ["", "## Canary evidence", ""]
    evidence = card["canary_evidence"]
    if evidence:
        lines += ["```json", json.dumps(evidence, indent=2, sort_keys=True, default=str), "```"]
    else:
        lines.append("none passed to the promotion (a manual promote)")
    lines.append("")
    return "\n".join(lines)


def write_promotion_card(
    replaced: str | None, promoted: str, record: dict[str, Any], settings: Settings
) -> dict[str, Any]:
    """Log the card to the new champion's run; returns the fields to add to the promotion's
    result: ``promotion_card`` (its run URI) or ``promotion_card_error`` (never raises)."""
    name = card_name(replaced, promoted)
    try:
        card = build_promotion_card(replaced, promoted, record, settings)
        run_id = card["new_champion"]["run_id"]
        if not run_id:
            raise ValueError(f"version {promoted} has no run to log the card to")
        with tempfile.TemporaryDirectory() as tmp:
            md, js = Path(tmp) / f"{name}.md", Path(tmp) / f"{name}.json"
            md.write_text(render_promotion_markdown(card))
            js.write_text(json.dumps(card, indent=2, sort_keys=True, default=str))
            log_run_files(run_id, [md, js], CARD_DIR, settings)
        uri = f"runs:/{run_id}/{CARD_DIR}/{name}.md"
        set_version_tags(promoted, {TAG_PROMOTION_CARD: uri}, settings)
    except Exception as exc:  # the promotion happened; its card must not undo or fail it
        error = f"{type(exc).__name__}: {exc}"[:500]
        logger.warning("could not write the promotion card %s: %s", name, error)
        return {"promotion_card_error": error}
    logger.info("promotion card: %s", uri)
    return {"promotion_card": uri}
