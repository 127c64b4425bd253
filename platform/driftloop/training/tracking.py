"""MLflow tracking helpers of training runs (fluent API; the registry is driftloop.registry)."""

from __future__ import annotations

import json
import logging
import math
import os
import subprocess
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from driftloop.settings import Settings

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
TAG_GATE = "driftloop.gate"
TAG_GATE_REASON = "driftloop.gate_reason"

#: Seconds between two system-metrics samples (CPU, memory, GPU when present).
SYSTEM_METRICS_INTERVAL_S = 2.0


def project_root() -> Path:
    root = os.environ.get("DRIFTLOOP_PROJECT_ROOT")
    return Path(root) if root else Path(__file__).resolve().parents[3]


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
    import mlflow

    from driftloop.registry.client import _configure_client_env, ping

    _configure_client_env(settings)
    ping(settings)
    mlflow.set_tracking_uri(settings.mlflow.uri)
    mlflow.set_registry_uri(settings.mlflow.uri)
    mlflow.set_experiment(settings.mlflow.experiment)
    mlflow.set_system_metrics_sampling_interval(SYSTEM_METRICS_INTERVAL_S)


def log_frame_input(df: pd.DataFrame, name: str, context: str) -> None:
    """Log ``df`` as an MLflow dataset input of the active run (digest, schema, profile)."""
    import mlflow
    from mlflow.data.pandas_dataset import from_pandas

    logged = df.copy()
    for col in logged.columns:  # MLflow's schema inference rejects tz-aware timestamps
        if isinstance(logged[col].dtype, pd.DatetimeTZDtype):
            logged[col] = logged[col].dt.tz_convert("UTC").dt.tz_localize(None)
    with warnings.catch_warnings():  # "integer columns cannot hold missing values": known
        warnings.simplefilter("ignore", UserWarning)
        dataset = from_pandas(logged, name=name, targets="is_late")
        mlflow.log_input(dataset, context=context)


def log_json(obj: Any, artifact_file: str) -> None:
    import mlflow

    mlflow.log_text(json.dumps(obj, indent=2, sort_keys=True, default=str), artifact_file)


def log_table(df: pd.DataFrame, artifact_file: str) -> None:
    import mlflow

    mlflow.log_text(df.to_csv(index=False), artifact_file)


def flat_metrics(prefix: str, metrics: dict[str, float]) -> dict[str, float]:
    """``{prefix_name: value}`` without NaNs (MLflow rejects them in some stores)."""
    return {
        f"{prefix}_{k}": float(v) for k, v in metrics.items() if v is not None and not math.isnan(v)
    }
