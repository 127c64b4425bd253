"""Reports on disk: saved with HTML and JSON, listed newest first, found by id or prefix."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from driftloop.errors import NotFoundError
from driftloop.monitoring.judge import DriftVerdict
from driftloop.monitoring.reports import get_report, list_reports, open_report, save_report


def test_save_list_show_open(similar: Any, make_settings: Any, monkeypatch) -> None:
    settings = make_settings()
    with pytest.raises(NotFoundError, match="no drift reports"):
        get_report("latest", settings)
    verdict = DriftVerdict(status="ok", retrain=False, reasons=["quiet"])
    t0 = datetime(2026, 1, 1, 12, tzinfo=UTC)
    window = {"start": "a", "end": "b", "months": ["2013-01"]}
    first = save_report(similar, verdict, "m", "1", window, settings, created=t0)
    second = save_report(
        similar, verdict, "m", "2", window, settings, created=t0 + timedelta(hours=1)
    )
    same_second = save_report(
        similar, verdict, "m", "2", window, settings, created=t0 + timedelta(hours=1)
    )
    assert first.id == "20260101T120000Z-v1"
    assert second.id == "20260101T130000Z-v2"
    assert same_second.id != second.id  # no overwrite within one second
    assert first.html.exists()
    assert first.quality_html is not None
    full = json.loads(first.json_path.read_text())
    assert full["verdict"]["status"] == "ok"
    assert full["evidently"]["drift"]["metrics"]
    assert [r.id for r in list_reports(settings)][-1] == first.id
    assert get_report("latest", settings).model_version == "2"
    assert get_report("20260101T12", settings).id == first.id
    assert get_report(first.id, settings).summary == similar.summary
    with pytest.raises(NotFoundError, match="matches several"):
        get_report("20260101T13", settings)
    opened: list[str] = []
    monkeypatch.setattr("webbrowser.open", lambda url: opened.append(url) or False)
    path, ok = open_report(first.id, settings)
    assert path == first.html
    assert not ok
    assert opened == [first.html.resolve().as_uri()]


def test_cli_lists_shows_and_names_a_missing_report(
    similar: Any, make_settings: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from driftloop.cli import main

    settings = make_settings()
    verdict = DriftVerdict(status="ok", retrain=False, reasons=["quiet"])
    saved = save_report(similar, verdict, "m", "7", {"months": ["2013-01"]}, settings)
    main(["drift", "list"])
    assert saved.id in capsys.readouterr().out
    main(["drift", "show", saved.id[:10]])
    out = capsys.readouterr().out
    assert "model    m v7" in out
    assert "drift    share 0.00: none" in out
    with pytest.raises(SystemExit) as exc:
        main(["drift", "show", "nope"])
    assert exc.value.code == 1
    assert "matches no report" in capsys.readouterr().err
