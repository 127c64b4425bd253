"""Drift reports on disk: save, list, show, open.

Each monitoring run writes one folder ``{state}/reports/<YYYYmmddTHHMMSSZ>-v<version>/``:

- ``drift.html`` (and ``quality.html`` when labels arrived): Evidently's self-contained pages;
- ``drift.json``: the run's metadata, summary, verdict and Evidently's full JSON;
- ``summary.json``: the same without Evidently's JSON (what listings read).
"""

from __future__ import annotations

import json
import logging
import webbrowser
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from driftloop.errors import NotFoundError
from driftloop.monitoring.adapter import DriftReport, DriftSummary
from driftloop.monitoring.judge import DriftVerdict
from driftloop.settings import Settings, get_settings

logger = logging.getLogger(__name__)

SUMMARY_FILE = "summary.json"


@dataclass(frozen=True)
class ReportInfo:
    """One saved report, as listed."""

    id: str
    folder: Path
    created: str
    model_name: str
    model_version: str
    window: dict[str, Any]
    summary: DriftSummary
    verdict: dict[str, Any]

    @property
    def html(self) -> Path:
        return self.folder / "drift.html"

    @property
    def json_path(self) -> Path:
        return self.folder / "drift.json"

    @property
    def quality_html(self) -> Path | None:
        path = self.folder / "quality.html"
        return path if path.exists() else None

    def header(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "created": self.created,
            "model_name": self.model_name,
            "model_version": self.model_version,
            "window": self.window,
            "verdict": self.verdict,
            "html": str(self.html),
            "json": str(self.json_path),
        }


def reports_dir(settings: Settings | None = None) -> Path:
    settings = settings or get_settings()
    return settings.state / "reports"


def _new_folder(root: Path, created: datetime, version: str) -> Path:
    stamp = created.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    folder = root / f"{stamp}-v{version}"
    n = 1
    while folder.exists():
        n += 1
        folder = root / f"{stamp}-{n}-v{version}"
    folder.mkdir(parents=True)
    return folder


def save_report(
    report: DriftReport,
    verdict: DriftVerdict,
    model_name: str,
    model_version: str,
    window: dict[str, Any],
    settings: Settings | None = None,
    created: datetime | None = None,
) -> ReportInfo:
    """Write the report's HTML and JSON into a new folder and return its listing entry."""
    created = created or datetime.now(UTC)
    folder = _new_folder(reports_dir(settings), created, str(model_version))
    report.save_html(folder)
    meta = {
        "id": folder.name,
        "created": created.astimezone(UTC).isoformat(),
        "model_name": model_name,
        "model_version": str(model_version),
        "window": window,
        "summary": report.summary.to_dict(),
        "verdict": verdict.to_dict(),
    }
    (folder / SUMMARY_FILE).write_text(json.dumps(meta, indent=2, default=str))
    full = {**meta, "evidently": report.evidently_json()}
    (folder / "drift.json").write_text(json.dumps(full, default=str))
    logger.info("drift report saved in %s", folder)
    return _load(folder)


def _load(folder: Path) -> ReportInfo:
    path = folder / SUMMARY_FILE
    if not path.exists():
        path = folder / "drift.json"
    data = json.loads(path.read_text())
    return ReportInfo(
        id=data["id"],
        folder=folder,
        created=data["created"],
        model_name=data["model_name"],
        model_version=str(data["model_version"]),
        window=data.get("window", {}),
        summary=DriftSummary.from_dict(data["summary"]),
        verdict=data.get("verdict", {}),
    )


def list_reports(settings: Settings | None = None, limit: int | None = None) -> list[ReportInfo]:
    """Saved reports, newest first (unreadable folders are skipped with a warning)."""
    root = reports_dir(settings)
    if not root.is_dir():
        return []
    out = []
    for folder in sorted(root.iterdir(), reverse=True):
        if not folder.is_dir():
            continue
        try:
            out.append(_load(folder))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            logger.warning("skipping unreadable report %s: %s", folder, exc)
    out.sort(key=lambda r: (r.created, r.id), reverse=True)
    return out[:limit] if limit else out


def get_report(report_id: str = "latest", settings: Settings | None = None) -> ReportInfo:
    """A report by id (its folder name, or a unique prefix), or ``latest``."""
    reports = list_reports(settings)
    if not reports:
        raise NotFoundError(
            f"no drift reports in {reports_dir(settings)}: run the monitor first "
            "(`driftloop demo` or the Prefect deployment 'monitor')"
        )
    if report_id == "latest":
        return reports[0]
    exact = [r for r in reports if r.id == report_id]
    matches = exact or [r for r in reports if r.id.startswith(report_id)]
    if len(matches) != 1:
        what = "matches several reports" if matches else "matches no report"
        raise NotFoundError(f"report id {report_id!r} {what}; see `driftloop drift list`")
    return matches[0]


def open_report(report_id: str = "latest", settings: Settings | None = None) -> tuple[Path, bool]:
    """The HTML path of a report, and whether a browser was opened on it."""
    report = get_report(report_id, settings)
    try:
        opened = webbrowser.open(report.html.resolve().as_uri())
    except webbrowser.Error:
        opened = False
    return report.html, bool(opened)
