"""The Prefect flow ``ingest`` against a real Prefect server (the session fixture)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from driftloop.settings import Settings

pytestmark = pytest.mark.integration


def test_ingest_flow_returns_a_json_summary(
    prefect_server: str,
    make_settings: Callable[..., Settings],
    make_dataset: Callable[[pd.DataFrame], Path],
    real_jan_flights: pd.DataFrame,
) -> None:
    import json

    from driftloop.data.store import data_revision
    from flows.ingest import ingest

    settings = make_settings(
        prefect_url=prefect_server, data={"dataset_dir": make_dataset(real_jan_flights)}
    )
    summary = ingest(start_month="2013-01", end_month="2013-01")
    json.dumps(summary)  # JSON-able
    assert summary["months"] == ["2013-01"]
    assert summary["partitions"]["flights/2013-01"]["rows_valid"] == 2000
    assert summary["revision"] == data_revision(settings)


def test_ingest_flow_fails_on_a_reversed_range(prefect_server: str) -> None:
    from driftloop.errors import InvalidInputError
    from flows.ingest import ingest

    with pytest.raises(InvalidInputError, match="reversed month range"):
        ingest(start_month="2013-03", end_month="2013-01")
