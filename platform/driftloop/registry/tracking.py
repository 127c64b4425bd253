"""MLflow tracking (the fluent API) for training runs: the only module besides
:mod:`driftloop.registry.client` (``MlflowClient``) and :mod:`driftloop.training.pyfunc` (the
model flavour) that imports ``mlflow``. Thin pass-throughs keep MLflow's API churn here."""

from __future__ import annotations

import json
import logging
import math
import subprocess
import warnings
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd

from driftloop.registry.client import configure_client_env, ping
from driftloop.settings import Settings, project_root

logger = logging.getLogger(__name__)

#: Version and run tag keys of the lineage contract.
TAG_RUN_ID = "driftloop.run_id"
TAG_GIT_COMMIT = "driftloop.git_commit"
TAG_DATA_REV = "driftloop.data_rev"
TAG_DATA_HASHES = "driftloop.data_hashes"
TAG_FEATURE_SERVICE = "driftloop.feature_service"
TAG_TRAIN_WINDOW = "driftloop.train_window"
TAG_HOLDOUT_MONTH = "driftloop.holdout_month"
TAG_HOLDOUT_AUC = "driftloop.holdout_auc"
TAG_BASELINE_AUC = "driftloop.baseline_auc"
TAG_COMPARED_WITH = "driftloop.compared_with"
#: the version's standing: the gate's decision, then what rollouts made of it
#: (:mod:`driftloop.registry.description`); the gate's own decision stays in ``gate_decision``
TAG_GATE = "driftloop.gate"
TAG_GATE_REASON = "driftloop.gate_reason"

#: Seconds between two system-metrics samples (CPU, memory, GPU when present).
SYSTEM_METRICS_INTERVAL_S = 2.0


def git_commit(root: Path | None = None) -> str:
    """HEAD of the project checkout, or "unknown" outside a git repository."""
    try:
        out = subprocess.run(
            ["git", "-C", str(root or project_root()), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "unknown"


def setup_mlflow(settings: Settings) -> None:
    """Point the fluent API at the configured server and experiment (pinged first)."""
    configure_client_env(settings)
    ping(settings)
    mlflow.set_tracking_uri(settings.mlflow.uri)
    mlflow.set_registry_uri(settings.mlflow.uri)
    mlflow.set_experiment(settings.mlflow.experiment)
    # MLflow leaves this function unannotated.
    mlflow.set_system_metrics_sampling_interval(SYSTEM_METRICS_INTERVAL_S)  # type: ignore[no-untyped-call]


def log_frame_input(df: pd.DataFrame, name: str, context: str) -> None:
    """Log ``df`` as an MLflow dataset input of the active run (digest, schema, profile)."""
    from mlflow.data.pandas_dataset import from_pandas  # a submodule mlflow does not import

    logged = df.copy()
    for col in logged.columns:  # MLflow's schema inference rejects tz-aware timestamps
        if isinstance(logged[col].dtype, pd.DatetimeTZDtype):
            logged[col] = logged[col].dt.tz_convert("UTC").dt.tz_localize(None)
    with warnings.catch_warnings():  # "integer columns cannot hold missing values": known
        warnings.simplefilter("ignore", UserWarning)
        dataset = from_pandas(logged, name=name, targets="is_late")
        mlflow.log_input(dataset, context=context)


def log_json(obj: Any, artifact_file: str) -> None:
    mlflow.log_text(json.dumps(obj, indent=2, sort_keys=True, default=str), artifact_file)


def log_text(text: str, artifact_file: str) -> None:
    mlflow.log_text(text, artifact_file)


def log_table(df: pd.DataFrame, artifact_file: str) -> None:
    mlflow.log_text(df.to_csv(index=False), artifact_file)


def flat_metrics(prefix: str, metrics: dict[str, float]) -> dict[str, float]:
    """``{prefix_name: value}`` without NaNs (MLflow rejects them in some stores)."""
    return {
        f"{prefix}_{k}": float(v) for k, v in metrics.items() if v is not None and not math.isnan(v)
    }


# ---- the active run ---------------------------------------------------------------------------
def start_run(
    run_id: str | None = None,
    run_name: str | None = None,
    nested: bool = False,
    log_system_metrics: bool | None = None,
) -> Any:
    """``mlflow.start_run`` (a context manager yielding the active run)."""
    return mlflow.start_run(
        run_id=run_id, run_name=run_name, nested=nested, log_system_metrics=log_system_metrics
    )


def log_params(params: dict[str, Any]) -> None:
    mlflow.log_params(params)


def log_metrics(metrics: dict[str, float], step: int | None = None) -> None:
    mlflow.log_metrics(metrics, step=step)


def log_metric(key: str, value: float, step: int | None = None) -> None:
    mlflow.log_metric(key, value, step=step)


def set_tags(tags: dict[str, Any]) -> None:
    mlflow.set_tags(tags)


def set_tag(key: str, value: Any) -> None:
    mlflow.set_tag(key, value)


def log_artifact(local_path: str, artifact_path: str | None = None) -> None:
    mlflow.log_artifact(local_path, artifact_path=artifact_path)
