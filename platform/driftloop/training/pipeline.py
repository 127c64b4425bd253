"""train_and_register: data -> fit (tracked in MLflow) -> evaluate on the holdout -> gate ->
register a version with its lineage tags and alias.

The steps are separate functions (``prepare``, ``fit_and_log``, ``evaluate``, ``register``) so the
Prefect flow in flows/train.py can run them as tasks and an ``evaluate`` subflow; each step reopens
the same MLflow run. A version is registered only at the very end, with every tag in one call;
if setting its alias fails, the version is deleted again (no half-registered versions).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from driftloop.data.profile import ShiftReport, check_window
from driftloop.data.repo import DataRepo
from driftloop.errors import DriftloopError, TrainingError
from driftloop.registry import client as registry
from driftloop.registry import description, integrity
from driftloop.registry import tracking as tr
from driftloop.registry.json_tags import offload_json_tags
from driftloop.registry.promotion import assign_alias_after_gate
from driftloop.schema import LABEL, MODEL_INPUT_COLUMNS, OUTPUT_PROBABILITY
from driftloop.settings import Settings, get_settings
from driftloop.training.bundle import ModelBundle
from driftloop.training.calibration import Calibration
from driftloop.training.inputs import TrainingData, load_training_data
from driftloop.training.job import Evaluation, FittedRun, TrainJob, TrainResult
from driftloop.training.model_card import SHIFT_ARTIFACT, TAG_MODEL_CARD, card_uri, write_card
from driftloop.training.pyfunc import load_python_model, log_model
from driftloop.training.serving_cost import evaluate_with_cost
from driftloop.training.trainer import DistContext, EpochCallback, EpochStats, TrainParams, fit

logger = logging.getLogger(__name__)

REFERENCE_ROWS = 5000
REFERENCE_ARTIFACT = "reference/reference.parquet"
TAG_MODEL_URI = "driftloop.model_uri"


# ---- parameters -----------------------------------------------------------------------------
def best_params_path(settings: Settings) -> Path:
    return settings.state / "tuning" / "best_params.json"


def resolve_params(
    settings: Settings, overrides: dict[str, Any] | None = None, use_best_params: bool | None = None
) -> TrainParams:
    """settings.training, then the tuned best parameters (when asked), then explicit overrides."""
    values: dict[str, Any] = {}
    use_best = settings.training.use_best_params if use_best_params is None else use_best_params
    if use_best:
        path = best_params_path(settings)
        if not path.exists():
            raise TrainingError(f"no tuned parameters at {path}: run `driftloop tune` first")
        values.update(json.loads(path.read_text())["params"])
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return TrainParams.from_settings(settings.training, **values)


def checkpoint_dir(settings: Settings, data: TrainingData, params: TrainParams) -> Path:
    key = json.dumps([data.window, data.data_rev, params.to_dict()], sort_keys=True)
    return settings.state / "checkpoints" / hashlib.sha1(key.encode()).hexdigest()[:12]


def params_from_run(run_params: dict[str, str], settings: Settings) -> TrainParams:
    """The TrainParams a run logged (strings back to their types)."""
    defaults = TrainParams.from_settings(settings.training).to_dict()
    values: dict[str, Any] = {}
    for key, default in defaults.items():
        if key not in run_params:
            continue
        raw = run_params[key]
        if isinstance(default, list):
            values[key] = [int(x) for x in json.loads(raw)]
        elif isinstance(default, bool):
            values[key] = raw.lower() == "true"
        elif isinstance(default, int):
            values[key] = int(raw)
        elif isinstance(default, float):
            values[key] = float(raw)
        else:
            values[key] = raw
    return TrainParams.from_settings(settings.training, **values)


def job_from_run(run_id: str, settings: Settings | None = None) -> tuple[TrainJob, FittedRun]:
    """Rebuild the job and fitted model of a finished fit step from its MLflow run (the
    ``evaluate`` subflow starts from a run id): data at the recorded revision, the logged model."""
    settings = settings or get_settings()
    run_params, tags, metrics = registry.get_run_data(run_id, settings)
    if TAG_MODEL_URI not in tags:
        raise TrainingError(f"run {run_id} has no logged model (did its fit step finish?)")
    start, _, end = tags[tr.TAG_TRAIN_WINDOW].partition("..")
    data = load_training_data(start, end, settings, rev=tags[tr.TAG_DATA_REV])
    params = params_from_run(run_params, settings)
    model = load_python_model(tags[TAG_MODEL_URI], settings)
    job = TrainJob(
        data=data,
        params=params,
        checkpoint_dir=checkpoint_dir(settings, data, params),
        run_name=f"train {data.window}",
    )
    fitted = FittedRun(
        run_id=run_id,
        model_uri=tags[TAG_MODEL_URI],
        bundle=model.bundle,
        history=[],
        device=tags.get("driftloop.device", "?"),
        samples_per_s=float(metrics.get("mean_samples_per_s", float("nan"))),
        best_epoch=int(metrics.get("best_epoch", 0)),
    )
    return job, fitted


# ---- steps ----------------------------------------------------------------------------------
def prepare(
    start_month: str,
    end_month: str,
    settings: Settings | None = None,
    params: dict[str, Any] | None = None,
    use_best_params: bool | None = None,
    data: TrainingData | None = None,
) -> TrainJob:
    """Check MLflow, load the data (Feast) and resolve parameters; nothing is written yet."""
    settings = settings or get_settings()
    resolved = resolve_params(settings, params, use_best_params)
    registry.ping(settings)
    data = data or load_training_data(start_month, end_month, settings)
    return TrainJob(
        data=data,
        params=resolved,
        checkpoint_dir=checkpoint_dir(settings, data, resolved),
        run_name=f"train {data.window}",
    )


def check_data_shift(job: TrainJob, settings: Settings | None = None) -> ShiftReport:
    """The data profiles of the window and holdout month (:mod:`driftloop.data.profile`) against
    the data revision the champion was trained on (what the model in service learned from),
    or the revision before when there is no champion or its revision is not an ancestor."""
    settings = settings or get_settings()
    data = job.data
    if data.data_rev in ("", "unknown"):
        return ShiftReport(
            None, None, "none", settings.data.profile_block, skipped="the data has no revision"
        )
    champion = registry.get_alias(registry.CHAMPION, settings)
    reference = champion.tags.get(tr.TAG_DATA_REV) if champion is not None else None
    source = f"the data of champion v{champion.version}" if champion is not None else "none"
    return check_window(
        [*data.months, data.holdout_month], settings, data.data_rev, reference, source
    )


def _log_shift(shift: ShiftReport) -> None:
    """The check in the active run: tags, metrics, and every number as an artifact."""
    findings = shift.findings()
    tr.set_tags(
        {
            "driftloop.data_shift": shift.status,
            "driftloop.data_shift_reference": shift.reference_rev or "none",
            "driftloop.data_shift_blocking": str(shift.blocking).lower(),
            "driftloop.data_shift_findings": "; ".join(findings)[:4000] or "none",
        }
    )
    tr.log_metrics(
        {
            "data_shift_max_psi": shift.max_psi(),
            "data_shift_findings": float(len(findings)),
            "data_shift_partitions": float(len(shift.partitions)),
        }
    )
    tr.log_json(shift.to_dict(), SHIFT_ARTIFACT)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "shift.md"
        path.write_text(shift.markdown())
        tr.log_artifact(str(path), artifact_path=SHIFT_ARTIFACT.rpartition("/")[0])


def _refuse_shift(job: TrainJob, shift: ShiftReport, settings: Settings) -> None:
    """TrainingError when the check blocks training (its run and checkpoint are given up, so a
    resume cannot step around the check)."""
    if not shift.blocking:
        return
    shutil.rmtree(job.checkpoint_dir, ignore_errors=True)
    where = DataRepo(settings).root
    raise TrainingError(
        f"training blocked: the data moved beyond settings.data.profile_* limits since revision "
        f"{(shift.reference_rev or '?')[:10]} ({shift.reference_source}): "
        + "; ".join(shift.blocking_findings()[:5])
        + f". Compare with `git -C {where} diff {(shift.reference_rev or '')[:10]} "
        f"{(shift.rev or '')[:10]} -- profiles/`; when the change is intended, train with "
        "DRIFTLOOP_DATA__PROFILE_BLOCK=off"
    )


def fit_and_log(
    job: TrainJob,
    settings: Settings | None = None,
    resume: bool = False,
    on_epoch: EpochCallback | None = None,
    dist: DistContext | None = None,
    shift: ShiftReport | None = None,
) -> FittedRun:
    """Train in an MLflow run: params, lineage tags, the data profile check (``shift``, computed
    when not given; a blocking one stops here, before training), dataset inputs, per-epoch and
    system metrics, the pyfunc model and the reference sample. Resumes the checkpoint when
    asked."""
    settings = settings or get_settings()
    tr.setup_mlflow(settings)
    data, params = job.data, job.params
    run_file = job.checkpoint_dir / "mlflow_run_id"
    if not resume and job.checkpoint_dir.exists():
        shutil.rmtree(job.checkpoint_dir)
    run_id = run_file.read_text().strip() if resume and run_file.exists() else None
    fit_rows, val_rows = data.split_validation(settings.training.validation_share)
    with tr.start_run(run_id=run_id, run_name=job.run_name, log_system_metrics=True) as run:
        job.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        run_file.write_text(run.info.run_id)
        if run_id is None:
            tr.log_params(
                {
                    **{
                        k: json.dumps(v) if isinstance(v, list) else v
                        for k, v in params.to_dict().items()
                    },
                    "train_window": data.window,
                    "holdout_month": data.holdout_month,
                    "train_rows": len(fit_rows),
                    "validation_rows": len(val_rows),
                    "holdout_rows": len(data.holdout),
                    "feature_service": data.feature_service,
                    "features": ",".join(data.features),
                    "cost_false_negative": settings.kpi.cost_false_negative,
                    "cost_false_positive": settings.kpi.cost_false_positive,
                    "validation_share": settings.training.validation_share,
                }
            )
            tr.set_tags(
                {
                    tr.TAG_GIT_COMMIT: tr.git_commit(),
                    tr.TAG_DATA_REV: data.data_rev,
                    tr.TAG_DATA_HASHES: json.dumps(data.data_hashes, sort_keys=True),
                    tr.TAG_FEATURE_SERVICE: data.feature_service,
                    tr.TAG_TRAIN_WINDOW: data.window,
                    tr.TAG_HOLDOUT_MONTH: data.holdout_month,
                    "driftloop.features": ",".join(data.features),
                }
            )
            shift = shift or check_data_shift(job, settings)
            _log_shift(shift)
            _refuse_shift(job, shift, settings)
            tr.log_frame_input(fit_rows, f"train {data.window}", "training")
            tr.log_frame_input(val_rows, f"validation {data.window}", "validation")
            tr.log_frame_input(data.holdout, f"holdout {data.holdout_month}", "holdout")

        def log_epoch(stats: EpochStats) -> None:
            tr.log_metrics(
                {
                    "train_loss": stats.train_loss,
                    "val_loss": stats.val_loss,
                    "val_roc_auc": stats.val_auc,
                    "samples_per_s": stats.samples_per_s,
                    "epoch_seconds": stats.seconds,
                    "learning_rate": stats.learning_rate,
                },
                step=stats.epoch,
            )
            if on_epoch is not None:
                on_epoch(stats)

        result = fit(
            fit_rows,
            val_rows,
            params,
            checkpoint_dir=job.checkpoint_dir,
            resume=resume,
            on_epoch=log_epoch,
            dist=dist,
        )
        bundle = ModelBundle(result.model.to("cpu"), result.preprocessor).calibrate(val_rows)
        _log_calibration(bundle.calibration)
        tr.set_tag("driftloop.device", result.device)
        tr.log_metrics(
            {
                "mean_samples_per_s": result.samples_per_s,
                "best_epoch": result.best_epoch,
                "epochs_trained": len(result.history),
                **result.cost_metrics(),
            }
        )
        info = log_model(bundle, data.train)
        # The content hash, as a run parameter, right away: later steps load it verified.
        integrity.record_digest(info.model_uri, run.info.run_id, settings)
        tr.set_tag(TAG_MODEL_URI, info.model_uri)
        _log_reference(bundle, data.holdout, params.seed)
    return FittedRun(
        run_id=run.info.run_id,
        model_uri=info.model_uri,
        bundle=bundle,
        history=result.history,
        device=result.device,
        samples_per_s=result.samples_per_s,
        best_epoch=result.best_epoch,
        resumed_from=result.resumed_from,
    )


def _log_calibration(calibration: Calibration) -> None:
    """The calibration fitted on the validation rows: its method, parameters and effect."""
    tr.log_params({"calibration_method": calibration.method})
    metrics = {
        "calibration_slope": calibration.slope,
        "calibration_intercept": calibration.intercept,
        "val_ece_before_calibration": calibration.ece_before,
        "val_ece_after_calibration": calibration.ece_after,
        "val_log_loss_before_calibration": calibration.log_loss_before,
        "val_log_loss_after_calibration": calibration.log_loss_after,
    }
    tr.log_metrics({k: v for k, v in metrics.items() if math.isfinite(v)})
    logger.info(
        "calibration %s on %d validation rows: ECE %.4f -> %.4f, log loss %.4f -> %.4f",
        calibration.method,
        calibration.rows,
        calibration.ece_before,
        calibration.ece_after,
        calibration.log_loss_before,
        calibration.log_loss_after,
    )


def _log_reference(bundle: ModelBundle, holdout: pd.DataFrame, seed: int) -> None:
    sample = holdout.sample(min(REFERENCE_ROWS, len(holdout)), random_state=seed)
    reference = sample[[*MODEL_INPUT_COLUMNS, LABEL]].reset_index(drop=True)
    reference[OUTPUT_PROBABILITY] = bundle.predict_proba(reference)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "reference.parquet"
        reference.to_parquet(path, index=False)
        tr.log_artifact(str(path), artifact_path="reference")


def evaluate(job: TrainJob, fitted: FittedRun, settings: Settings | None = None) -> Evaluation:
    """Score model, naive baseline, logistic regression and the champion on the holdout; decide
    the gate; log metrics, slices, calibration and permutation importance to the run."""

    return evaluate_with_cost(job, fitted, settings or get_settings())


def _champion_drift_report(evaluation: Evaluation, settings: Settings) -> dict[str, str]:
    """The drift report tag of the champion this version was compared with (what led to its
    training, when drift did), as this version's TAG_CHAMPION_DRIFT_REPORT."""
    if evaluation.champion_version is None:
        return {}
    try:
        tags = registry.get_version(evaluation.champion_version, settings).tags
    except DriftloopError:
        return {}
    report = tags.get(description.TAG_DRIFT_REPORT)
    return {description.TAG_CHAMPION_DRIFT_REPORT: report} if report else {}


def _describe(version: str, settings: Settings) -> None:
    """The version's description from its tags (best effort: the version is registered)."""
    try:
        description.describe(version, settings)
    except Exception:
        logger.warning("could not write the description of version %s", version, exc_info=True)


def register(
    job: TrainJob,
    fitted: FittedRun,
    evaluation: Evaluation,
    settings: Settings | None = None,
    prefect_run: str | None = None,
) -> TrainResult:
    """Register the version with every lineage tag (large JSON ones as run artifacts, with a
    pointer in the tag), then set its alias (or none) through the registry's audited writer,
    then write its description. ``prefect_run``: the UI URL of the flow run that gated it."""
    settings = settings or get_settings()
    data = job.data
    model_m = evaluation.metrics["model"]
    tags = {
        tr.TAG_RUN_ID: fitted.run_id,
        tr.TAG_GIT_COMMIT: tr.git_commit(),
        tr.TAG_DATA_REV: data.data_rev,
        tr.TAG_DATA_HASHES: json.dumps(data.data_hashes, sort_keys=True),
        tr.TAG_FEATURE_SERVICE: data.feature_service,
        tr.TAG_TRAIN_WINDOW: data.window,
        tr.TAG_HOLDOUT_MONTH: data.holdout_month,
        tr.TAG_HOLDOUT_AUC: f"{model_m['roc_auc']:.6f}",
        tr.TAG_BASELINE_AUC: f"{evaluation.metrics['baseline']['roc_auc']:.6f}",
        tr.TAG_COMPARED_WITH: evaluation.champion_version or "none",
        tr.TAG_GATE: evaluation.decision_gate,
        tr.TAG_GATE_REASON: evaluation.decision_reason[:4000],
        TAG_MODEL_CARD: card_uri(fitted.run_id),
        # serving decides is_late at this cost-optimal holdout threshold (settings.kpi's costs)
        registry.THRESHOLD_TAG: repr(float(model_m["threshold"])),
        registry.KPI_TAG: json.dumps(settings.kpi.model_dump(mode="json"), sort_keys=True),
        description.TAG_GATE_DECISION: evaluation.decision_gate,
        **({description.TAG_PREFECT_RUN: prefect_run} if prefect_run else {}),
        **_champion_drift_report(evaluation, settings),
    }
    tags = offload_json_tags(fitted.run_id, tags, settings)
    # Re-hashed against the run's parameter: an artifact changed since fit is not registered.
    version = integrity.register_verified_version(fitted.model_uri, fitted.run_id, tags, settings)
    try:  # every version has its card (gate reason included), or the version goes again
        write_card(job, fitted, evaluation, version.version, settings)
    except Exception as exc:
        registry.delete_version(version.version, settings)
        raise TrainingError(
            f"writing the model card of version {version.version} failed "
            f"({type(exc).__name__}: {exc}); the version was removed"
        ) from exc
    try:
        if evaluation.alias is not None:
            assign_alias_after_gate(
                version.version,
                evaluation.alias,
                evaluation.decision_reason,
                {**evaluation.metrics, "kpi": settings.kpi.model_dump(mode="json")},
                settings,
            )
    except Exception as exc:
        registry.delete_version(version.version, settings)
        if isinstance(exc, DriftloopError):
            raise
        raise TrainingError(
            f"setting alias {evaluation.alias} on version {version.version} failed ({exc}); "
            "the version was removed"
        ) from exc
    _tag_run(fitted.run_id, version.version, evaluation, settings)
    _describe(version.version, settings)
    shutil.rmtree(job.checkpoint_dir, ignore_errors=True)
    logger.info(
        "version %s: %s (%s)", version.version, evaluation.decision_gate, evaluation.decision_reason
    )
    return TrainResult(
        version=version.version,
        run_id=fitted.run_id,
        gate=evaluation.decision_gate,
        reason=evaluation.decision_reason,
        alias=evaluation.alias,
        metrics=evaluation.metrics,
        params=job.params.to_dict(),
        history=fitted.history,
        compared_with=evaluation.champion_version or "none",
    )


def _tag_run(run_id: str, version: str, evaluation: Evaluation, settings: Settings) -> None:
    try:
        tags = {"driftloop.model_version": version, tr.TAG_GATE: evaluation.decision_gate}
        registry.set_run_tags(run_id, tags, settings)
    except Exception:  # the version is registered; run tags are a convenience
        logger.warning("could not tag run %s with its version", run_id, exc_info=True)


def train_and_register(
    start_month: str,
    end_month: str,
    settings: Settings | None = None,
    params: dict[str, Any] | None = None,
    use_best_params: bool | None = None,
    resume: bool = False,
    on_epoch: EpochCallback | None = None,
    data: TrainingData | None = None,
    dist: DistContext | None = None,
    **param_overrides: Any,
) -> TrainResult:
    """Train on ``start_month..end_month``, evaluate on the month after, register and gate.

    ``params``/``param_overrides``: TrainParams fields (epochs, learning_rate, ...) overriding
    settings.training (and the tuned parameters when ``use_best_params``). ``data`` replaces the
    Feast frames (reproduce, tests); ``dist`` is rank 0 of a DDP group (driftloop.training.ddp).
    Returns the version, run id, gate decision and metrics.
    """
    settings = settings or get_settings()
    job = prepare(
        start_month,
        end_month,
        settings,
        {**(params or {}), **param_overrides},
        use_best_params,
        data,
    )
    fitted = fit_and_log(job, settings, resume=resume, on_epoch=on_epoch, dist=dist)
    evaluation = evaluate(job, fitted, settings)
    return register(job, fitted, evaluation, settings)
