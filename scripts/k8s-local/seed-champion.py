"""Seed a tiny MLflow registry (sqlite backend, local artifacts) whose registered model has a
`champion` alias, so serving pods on the k8s-local cluster (no MLflow server reachable) load a
model and become Ready. Runs inside a pod of the platform image; argument: the registry folder.

The model is a constant-probability pyfunc with ``predict_proba``: this checks the deployment
(image, settings, volumes, probes, rollout), not model quality.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import mlflow
import numpy as np
from mlflow import MlflowClient
from mlflow.pyfunc import PythonModel


class ConstantModel(PythonModel):
    """P(delay) = 0.25 for every row."""

    def predict_proba(self, model_input: Any) -> np.ndarray:
        return np.full(len(model_input), 0.25)

    # No type hints here: MLflow would derive the model signature from them.
    def predict(self, context, model_input, params=None):
        return self.predict_proba(model_input)


def main(root: str) -> None:
    os.makedirs(root, exist_ok=True)
    uri = f"sqlite:///{root}/mlflow.db"
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    name = os.environ.get("DRIFTLOOP_MLFLOW__REGISTERED_MODEL", "flight-delay")
    client = MlflowClient()
    experiment = client.get_experiment_by_name("k8s-local")
    experiment_id = (
        experiment.experiment_id
        if experiment
        else client.create_experiment("k8s-local", artifact_location=f"file://{root}/artifacts")
    )
    with mlflow.start_run(experiment_id=experiment_id):
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=ConstantModel(),
            registered_model_name=name,
            pip_requirements=["mlflow"],
        )
    version = str(info.registered_model_version)
    client.set_registered_model_alias(name, "champion", version)
    sys.stdout.write(f"seeded {name} version {version} as champion in {uri}\n")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/var/lib/driftloop/mlflow")
