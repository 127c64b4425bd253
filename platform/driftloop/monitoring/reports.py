"""Drift reports on disk: save, list, show, open.

Each monitoring run writes one folder ``{state}/reports/<YYYYmmddTHHMMSSZ>-v<version>/``:

- ``drift.html`` (and ``quality.html`` when labels arrived): Evidently's self-contained pages;
- ``drift.json``: the run's metadata, summary, verdict and Evidently's full JSON;
- ``summary.json``: the same without Evidently's JSON (what listings read).

Every HTML page of a report starts with a driftloop header (:func:`stamp_headers`): model and
version, window, verdict and its reasons, the drifted features (count and every name), and
links to the Prefect flow run, the MLflow version and run. The report is logged into the
version's training run under ``monitoring/<id>/``; its links (``links`` in summary.json) are
HTTP URLs of the MLflow UI (:mod:`driftloop.registry.links`), which open in a browser on one
machine and, with ``mlflow.public_url``, from outside a cluster, unlike the file path.
"""

from __future__ import annotations

import html
import json
import logging
import re
import webbrowser
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from driftloop.errors import NotFoundError
from driftloop.monitoring.adapter import DriftReport, DriftSummary
from driftloop.monitoring.judge import DriftVerdict
from driftloop.registry.links import artifact_links, version_url
from driftloop.settings import Settings, get_settings

logger = logging.getLogger(__name__)

SUMMARY_FILE = "summary.json"
#: Where a report's files go in the version's training run (``monitoring/<report id>/``).
ARTIFACT_DIR = "monitoring"
#: id of the header element each HTML page gets (its presence makes stamping idempotent).
HEADER_ID = "driftloop-report-header"


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
    #: HTTP links: ``report`` (MLflow UI page of drift.html), ``download``, ``version``,
    #: ``run`` (MLflow), ``prefect_run``; empty when the report has no MLflow run
    links: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """What to open: the report's MLflow UI page, else (no MLflow run) the file path."""
        return self.links.get("report") or str(self.html)

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
            "url": self.url,
            "links": self.links,
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
    run_id: str | None = None,
) -> ReportInfo:
    """Write the report's HTML (with the driftloop header) and JSON into a new folder and
    return its listing entry. ``run_id``: the version's training run, where the report will be
    logged (its links point there)."""
    settings = settings or get_settings()
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
        "links": report_links(folder.name, model_name, str(model_version), run_id, settings),
    }
    (folder / SUMMARY_FILE).write_text(json.dumps(meta, indent=2, default=str))
    full = {**meta, "evidently": report.evidently_json()}
    (folder / "drift.json").write_text(json.dumps(full, default=str))
    info = _load(folder)
    stamp_headers(info)
    logger.info("drift report saved in %s (%s)", folder, info.url)
    return info


def artifact_path(report_id: str, page: str = "drift.html") -> str:
    """Path of a report page in the version's training run."""
    return f"{ARTIFACT_DIR}/{report_id}/{page}"


def prefect_run_url() -> str | None:
    """The Prefect UI page of the flow run this code runs in (under ``PREFECT_UI_URL``, which
    defaults from the API URL; the path the engine's own "View at" line uses); None outside a
    flow run."""
    try:
        from prefect.runtime import flow_run
        from prefect.utilities.urls import url_for

        return url_for("flow-run", obj_id=flow_run.id) if flow_run.id else None
    except Exception:  # no Prefect, or no run context
        return None


def report_links(
    report_id: str,
    model_name: str,
    model_version: str,
    run_id: str | None,
    settings: Settings,
) -> dict[str, str]:
    """The report's HTTP links (see :class:`ReportInfo`). Without a run, or with MLflow
    unreachable, only those that need no lookup (a warning says why the rest are missing)."""
    links: dict[str, str] = {"version": version_url(model_version, settings, model_name)}
    prefect = prefect_run_url()
    if prefect:
        links["prefect_run"] = prefect
    if not run_id:
        return links
    try:
        found = artifact_links(run_id, artifact_path(report_id), settings)
    except Exception as exc:  # the report stays on disk; its header says what is missing
        logger.warning("no MLflow link for report %s: %s", report_id, exc)
        return links
    return {**links, "report": found.view, "download": found.download, "run": found.run}


def drifted_text(summary: DriftSummary) -> str:
    """``3 of 12 features drifted: dest, temp, dewp``: the count and every name, so a list and
    its count cannot disagree ("none of 12 features drifted" when none did)."""
    judged = len(summary.columns) or len(summary.drifted_columns)
    if not summary.drifted_columns:
        return f"none of {judged} features drifted"
    names = ", ".join(summary.drifted_columns)
    return f"{len(summary.drifted_columns)} of {judged} features drifted: {names}"


def _link(label: str, url: str | None) -> str:
    if not url:
        return ""
    u = html.escape(url, quote=True)
    return (
        f'<a href="{u}" target="_blank" rel="noopener" style="color:#1a5fb4">{html.escape(label)}'
        f'</a> <code style="font-size:11px;color:#555">{html.escape(url)}</code><br>'
    )


def header_html(info: ReportInfo, page: str = "drift.html") -> str:
    """The driftloop header of a report page: what was judged, the verdict and its reasons,
    and links back to the Prefect run and the MLflow version and run (each with its URL in
    text too: the MLflow UI shows the page in a sandboxed frame, where a link may not open)."""
    verdict = info.verdict or {}
    reasons = verdict.get("reasons") or []
    window = info.window or {}
    months = ", ".join(window.get("months") or []) or "-"
    esc = html.escape
    reason_items = "".join(f"<li>{esc(str(r))}</li>" for r in reasons) or "<li>-</li>"
    info_items = "".join(f"<li>{esc(str(r))}</li>" for r in verdict.get("info") or [])
    links = info.links
    pages = ", ".join(
        f"{esc(p.name)}" for p in sorted(info.folder.glob("*.html")) if p.name != page
    )
    return (
        f'<header id="{HEADER_ID}" style="font-family:system-ui,sans-serif;font-size:14px;'
        "line-height:1.45;padding:12px 18px;margin:0 0 8px 0;background:#f4f6fb;"
        'border-bottom:3px solid #1a5fb4;color:#111">'
        f'<div style="font-size:18px;font-weight:600">driftloop {esc(page)}: '
        f"{esc(info.model_name)} version {esc(info.model_version)}, verdict "
        f'<span style="color:{_verdict_colour(verdict)}">{esc(str(verdict.get("status", "?")))}'
        f"</span>{': asks for a retrain' if verdict.get('retrain') else ''}</div>"
        + _guard_note(verdict)
        + "<div>"
        f"Window {esc(_when(window.get('start')))} .. {esc(_when(window.get('end')))}"
        f" (data months {esc(months)}); {info.summary.rows_current} rows judged "
        f"({info.summary.rows_labeled} labelled) against {info.summary.rows_reference} "
        f"reference rows; report {esc(info.id)}, created {esc(_when(info.created))}</div>"
        f"<div>Drift share {info.summary.drift_share:.2f}: {esc(drifted_text(info.summary))}</div>"
        + _sample_note(info)
        + f'<div>Reason{"s" if len(reasons) > 1 else ""}:<ul style="margin:2px 0">'
        f"{reason_items}</ul></div>"
        + (
            f'<div>Reported, not acted on:<ul style="margin:2px 0">{info_items}</ul></div>'
            if info_items
            else ""
        )
        + '<div style="margin-top:4px">'
        + _link("Prefect flow run", links.get("prefect_run"))
        + _link(f"MLflow: {info.model_name} version {info.model_version}", links.get("version"))
        + _link("MLflow: training run (this report is under monitoring/)", links.get("run"))
        + (f"Other pages of this report: {pages}" if pages else "")
        + "</div></header>"
    )


def _guard_note(verdict: dict[str, Any]) -> str:
    """A verdict that asks for a retrain does not start one by itself: the loop's guards run
    after the report is written. Say so, or a report of a suppressed retrain (cooldown) reads
    as if a retrain had started."""
    if not verdict.get("retrain"):
        return ""
    return (
        "<div>Whether a retrain started is decided after this report by the loop's guards "
        "(cooldown, daily budget, one retrain at a time): the Prefect flow run says which.</div>"
    )


def _sample_note(info: ReportInfo) -> str:
    """A line saying the plots below were drawn from a sample when the window was larger than
    ``monitoring.report_max_rows`` (the header's figures are on all rows): otherwise a count on
    Evidently's page could differ from the header's and look like a contradiction."""
    shown = get_settings().monitoring.report_max_rows
    if info.summary.rows_current <= shown:
        return ""
    return (
        f"<div>The pages below are drawn from a seeded sample of {shown} of the "
        f"{info.summary.rows_current} current rows; the figures of this header (drift share, "
        "drifted features, rows) are computed on all rows.</div>"
    )


def _when(value: Any) -> str:
    """An ISO time as ``2013-07-01 00:00 UTC`` (as given when it is not one)."""
    try:
        t = datetime.fromisoformat(str(value))
    except ValueError:
        return str(value if value is not None else "-")
    t = t.astimezone(UTC) if t.tzinfo else t
    return f"{t:%Y-%m-%d %H:%M} UTC"


def _verdict_colour(verdict: dict[str, Any]) -> str:
    if verdict.get("retrain"):
        return "#c01c28"
    return "#26a269" if verdict.get("status") == "ok" else "#9c6a00"


_BODY = re.compile(r"<body[^>]*>", re.IGNORECASE)


def add_header(page_html: str, header: str) -> str:
    """``page_html`` with ``header`` first in its body; a header it has already is replaced
    (a page stamped before attribution.html existed listed the report's other pages without
    it)."""
    start = page_html.find(f'<header id="{HEADER_ID}"')
    if start >= 0:
        end = page_html.find("</header>", start)
        if end >= 0:
            return page_html[:start] + header + page_html[end + len("</header>") :]
    match = _BODY.search(page_html)
    if match is None:
        return header + page_html
    return page_html[: match.end()] + header + page_html[match.end() :]


def stamp_headers(info: ReportInfo) -> list[Path]:
    """Put the driftloop header on every HTML page of the report's folder (the Evidently
    pages, and any page added later, such as attribution.html), replacing a header a page has
    already, so each lists the report's current pages; returns the pages changed."""
    changed = []
    for page in sorted(info.folder.glob("*.html")):
        text = page.read_text(encoding="utf-8")
        stamped = add_header(text, header_html(info, page.name))
        if stamped != text:
            page.write_text(stamped, encoding="utf-8")
            changed.append(page)
    return changed


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
        links=dict(data.get("links") or {}),
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
    """The HTML path of a report, and whether a browser was opened on it (on its MLflow UI
    page when it has one, else on the file)."""
    report = get_report(report_id, settings)
    target = report.links.get("report") or report.html.resolve().as_uri()
    try:
        opened = webbrowser.open(target)
    except webbrowser.Error:
        opened = False
    return report.html, bool(opened)
