"""``driftloop ingest`` as a user runs it: a subprocess of the installed script."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.integration


def _driftloop() -> str:
    found = shutil.which("driftloop", path=str(Path(sys.executable).parent))
    assert found, "the driftloop script is not installed in this environment"
    return found


def _run(state: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_driftloop(), *args],
        env={**os.environ, "DRIFTLOOP_STATE_DIR": str(state), **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "2013-03", "--to", "2013-01"], "error: reversed month range: --from 2013-03"),
        (["--from", "2013-13", "--to", "2013-13"], "error: unknown month '2013-13'"),
        (["--from", "2014-01", "--to", "2014-01"], "error: month 2014-01 is outside the data set"),
    ],
)
def test_bad_months_exit_1_with_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    done = _run(tmp_path / "state", "ingest", *args)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(message)
    assert not (tmp_path / "state" / "datarepo").exists()


def test_missing_state_and_missing_data_set_exit_1_with_one_line(tmp_path: Path) -> None:
    done = _run(tmp_path / "state", "data-status")
    assert done.returncode == 1
    assert done.stderr.strip().startswith("error: no data repository at ")
    assert len(done.stderr.strip().splitlines()) == 1
    done = _run(
        tmp_path / "state",
        "ingest",
        "--from",
        "2013-01",
        "--to",
        "2013-01",
        DRIFTLOOP_DATA__DATASET_DIR=str(tmp_path / "nowhere"),
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"error: data set folder {tmp_path / 'nowhere'} does not exist (settings.data.dataset_dir)"
    ]


def test_ingest_prints_partitions_and_revision(
    tmp_path: Path,
    make_dataset: Callable[[pd.DataFrame], Path],
    real_jan_flights: pd.DataFrame,
) -> None:
    dataset = make_dataset(real_jan_flights)
    env = {"DRIFTLOOP_DATA__DATASET_DIR": str(dataset)}
    done = _run(tmp_path / "state", "ingest", "--from", "2013-01", "--to", "2013-01", **env)
    assert done.returncode == 0, done.stderr
    assert "flights/2013-01  valid   2000  invalid    0" in done.stdout
    assert "(new revision)" in done.stdout
    status = _run(tmp_path / "state", "data-status", **env)
    assert status.returncode == 0, status.stderr
    assert "months 2013-01" in status.stdout
    again = _run(tmp_path / "state", "ingest", "--from", "2013-01", "--to", "2013-01", **env)
    assert "(unchanged)" in again.stdout
