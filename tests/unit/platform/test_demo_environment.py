"""The demo's in-process flows talk to the platform's Prefect server, not to an ephemeral one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

#: A fresh interpreter (the test session has Prefect settings contexts of its own): prefect is
#: imported (and reads its settings) before the demo sets PREFECT_API_URL, as in `driftloop demo`.
PROBE = """
import prefect.flows
from prefect.settings import PREFECT_API_URL
from driftloop.embedded.demo.environment import apply_demo_environment
settings = apply_demo_environment()
print(settings.prefect.url, PREFECT_API_URL.value())
"""


def test_demo_environment_points_an_already_imported_prefect_at_the_platform(
    tmp_path: Path,
) -> None:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PREFECT_", "DRIFTLOOP_", "MLFLOW_"))
    }
    env.update(
        DRIFTLOOP_STATE_DIR=str(tmp_path),
        DRIFTLOOP_PREFECT__PORT="4999",
        PREFECT_HOME=str(tmp_path / "prefect-home"),
    )
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    wanted, seen = out.stdout.split()[-2:]
    assert wanted == "http://127.0.0.1:4999/api"
    assert seen == wanted
