"""What `make demo` prints: MLflow's own "View run ... at" lines are not in it (the training of
the first champion printed each link three times before the demo's own summary)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

#: A run started and ended twice (as training resumes its run), in a fresh interpreter with the
#: demo's environment applied, against a real MLflow server; then, for contrast, without it.
PROBE = """
import os, sys
import mlflow
if sys.argv[1] == "demo":
    from driftloop.embedded.demo.environment import DEMO_ENV
    os.environ.update({k: v for k, v in DEMO_ENV.items() if k.startswith("MLFLOW_")})
mlflow.set_tracking_uri(sys.argv[2])
mlflow.set_experiment("demo-output")
with mlflow.start_run(run_name="probe") as run:
    pass
with mlflow.start_run(run_id=run.info.run_id):
    pass
print("done")
"""


def _probe(mode: str, uri: str, tmp_path: Path) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DRIFTLOOP_", "MLFLOW_"))}
    env["DRIFTLOOP_STATE_DIR"] = str(tmp_path)
    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode, uri],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def test_the_demo_prints_no_mlflow_run_links_of_its_own(mlflow_server: str, tmp_path: Path) -> None:
    plain = _probe("plain", mlflow_server, tmp_path)
    assert plain.count("View run probe at") == 2  # what MLflow prints by default
    demo = _probe("demo", mlflow_server, tmp_path)
    assert demo.strip() == "done"
