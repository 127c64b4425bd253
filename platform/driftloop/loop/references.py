"""What registered model versions reference, for the platform's retention
(:mod:`driftloop.loop.housekeeping`): data revisions (``driftloop.data_rev``), capture windows
recorded in JSON tags (``"window": [start, end]``, the monitor's ``driftloop.drift.latest``)
and the tag texts in which report ids and folders are looked for. Every version of the
registered model counts, whatever its alias."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from driftloop.registry.inventory import list_versions
from driftloop.registry.tracking import TAG_DATA_REV
from driftloop.settings import Settings

#: A capture window and who holds it: (start, end, "flight-delay v3 (driftloop.drift.latest)").
Window = tuple[datetime, datetime, str]


@dataclass
class References:
    """What registered versions reference, each with the versions that do."""

    data_revs: dict[str, list[str]] = field(default_factory=dict)
    windows: list[Window] = field(default_factory=list)
    #: (version label, every tag value of the version): where report ids are looked for
    tag_texts: list[tuple[str, str]] = field(default_factory=list)
    versions: list[str] = field(default_factory=list)

    def report_holders(self, report_id: str, folder: Path) -> list[str]:
        return [label for label, text in self.tag_texts if report_id in text or str(folder) in text]

    def summary(self) -> dict[str, Any]:
        return {
            "versions": self.versions,
            "data_revs": self.data_revs,
            "windows": [[s.isoformat(), e.isoformat(), who] for s, e, who in self.windows],
        }


def parse_utc(value: Any) -> datetime | None:
    try:
        ts = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def window_of(value: Any) -> tuple[datetime, datetime] | None:
    """``(start, end)`` of a window recorded as ``[start, end]`` or ``{"start":, "end":}``."""
    if isinstance(value, list | tuple) and len(value) == 2:
        start, end = parse_utc(value[0]), parse_utc(value[1])
    elif isinstance(value, dict):
        start, end = parse_utc(value.get("start")), parse_utc(value.get("end"))
    else:
        return None
    return (start, end) if start is not None and end is not None and start <= end else None


def collect_references(settings: Settings) -> References:
    """What every registered version references (ServiceUnavailableError: MLflow is down)."""
    refs = References()
    for info in list_versions(settings):
        label = f"{info.name} v{info.version}"
        refs.versions.append(label)
        rev = info.tags.get(TAG_DATA_REV)
        if rev and rev not in ("?", "unknown"):
            refs.data_revs.setdefault(rev, []).append(label)
        refs.tag_texts.append((label, "\n".join(info.tags.values())))
        for key, value in info.tags.items():
            if not value.lstrip().startswith("{"):
                continue
            try:
                window = window_of(json.loads(value).get("window"))
            except (ValueError, AttributeError):
                continue
            if window is not None:
                refs.windows.append((*window, f"{label} ({key})"))
    return refs
