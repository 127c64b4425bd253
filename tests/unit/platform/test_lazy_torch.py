"""Feast imported through driftloop.features, or by MLflow's REST client through
driftloop.registry, does not import torch (feast 0.67 does, eagerly, when torch is installed:
+213 MB in serving), and feast's tensor helpers still get torch when they ask for it. Real feast
and MLflow in a fresh interpreter; nothing mocked."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import sys
import driftloop.features
from feast import FeatureStore
import feast.infra.offline_stores.offline_store
import feast.online_response
print('torch' in sys.modules)
import feast.torch_wrapper as wrapper
print(wrapper.TORCH_AVAILABLE, wrapper.get_torch().__name__, 'torch' in sys.modules)
"""


def _run(script: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return out.stdout.split("\n")


def test_feast_through_driftloop_features_leaves_torch_unimported_until_asked() -> None:
    lines = _run(SCRIPT)
    assert lines[0] == "False"  # feast and its offline/online modules loaded, torch not
    assert lines[1] == "True torch True"  # get_torch imports it on demand


def test_feast_on_its_own_imports_torch_eagerly() -> None:
    """The behaviour the lazy module works around (this fails once feast stops doing it, and
    the workaround can go)."""
    lines = _run("import sys\nimport feast\nprint('torch' in sys.modules)")
    assert lines[0] == "True"


#: What MLflow's REST client does before its first request: load every installed
#: ``mlflow.request_header_provider`` plugin, feast's among them.
MLFLOW_HEADERS = """
import sys
{first}
from mlflow.tracking.request_header.registry import resolve_request_headers
resolve_request_headers()
print('feast' in sys.modules, 'torch' in sys.modules)
"""


def test_an_mlflow_client_through_driftloop_registry_loads_feast_without_torch() -> None:
    lines = _run(MLFLOW_HEADERS.format(first="import driftloop.registry"))
    # feast is imported by MLflow (its plugin), torch is not
    assert lines[0] == "True False"


def test_an_mlflow_client_on_its_own_imports_feast_and_torch() -> None:
    """The path the registry's deferral covers (fails once feast drops its MLflow plugin)."""
    lines = _run(MLFLOW_HEADERS.format(first=""))
    assert lines[0] == "True True"
