"""The model class imports without MLflow's predict-type-hint warning (it was the first line
`make demo` printed), and its predict takes what serving and MLflow pass."""

from __future__ import annotations

import subprocess
import sys


def test_importing_the_model_class_prints_nothing() -> None:
    done = subprocess.run(
        [sys.executable, "-c", "import driftloop.training.pyfunc"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    assert "Warning" not in done.stderr, done.stderr
    assert done.stdout == ""
