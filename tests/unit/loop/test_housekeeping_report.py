"""Retention settings and the housekeeping report's shape (the sweep itself runs on real files,
DVC and MLflow in tests/integration/loop/test_housekeeping.py)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from driftloop.loop.housekeeping import HousekeepingReport, Item
from driftloop.settings import RetentionSettings


def test_retention_refuses_a_schedule_that_is_not_five_cron_fields() -> None:
    assert RetentionSettings(schedule_cron="*/15 2 * * 1-5").schedule_cron == "*/15 2 * * 1-5"
    for bad in ("daily", "0 3 * *", "0 3 * * * *"):
        with pytest.raises(ValidationError, match="schedule_cron"):
            RetentionSettings(schedule_cron=bad)
    with pytest.raises(ValidationError, match="captures_days"):
        RetentionSettings(captures_days=0)


def test_report_totals_and_markdown_say_what_went_and_what_stayed() -> None:
    kinds = ("captures", "feedback", "reports", "quarantine", "dvc_cache")
    report = HousekeepingReport(
        started="2026-01-01T00:00:00+00:00",
        dry_run=True,
        limits_days=dict.fromkeys(kinds, 30.0),
        cutoffs=dict.fromkeys(kinds, "2025-12-02T00:00:00+00:00"),
        removed=[
            Item("captures", "capture/predictions/date=2025-10-01", 2048, 92.0, "old"),
            Item("captures", "capture/predictions/date=2025-10-02", 1024, 91.0, "old"),
        ],
        kept=[Item("reports", "reports/x-v3", 10, 40.0, "named by flight-delay v3")],
    )
    assert report.bytes_removed == 3072
    totals = report.totals()
    assert totals["captures"] == {"removed": 2, "bytes": 3072, "kept": 0}
    assert totals["reports"] == {"removed": 0, "bytes": 0, "kept": 1}
    text = report.markdown()
    assert "(dry run)" in text
    assert "would remove 2 items, 3.0 KB" in text
    assert "`reports/x-v3` (reports): named by flight-delay v3" in text
    assert report.to_dict()["totals"]["captures"]["removed"] == 2
