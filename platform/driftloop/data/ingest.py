"""Ingest: raw tables -> contract validation -> quarantine -> parquet partitions -> DVC add + push
-> one commit of the data repository per ingest that changed something.

All months are validated before anything is written: when a month's invalid share is above
``settings.data.max_invalid_share`` the ingest fails as a whole (DataQualityError naming the
limit and the share), the data repository is untouched, and the invalid rows with their reasons
are written to ``{state}/rejected/`` for inspection. Accepted runs keep the quarantine DVC-tracked
in the data repository next to the partitions (``quarantine/flights-2013-01.parquet``), so each
revision says which rows were left out and why.

Each partition also gets its profile (:mod:`driftloop.data.profile`: distributions, missing
shares, ranges) in ``profiles/``, committed with the partition, and every ingested partition is
compared with its profile at the revision before the ingest (a month seen for the first time:
with the month before). Shifts beyond the limits of ``settings.data.profile_*`` are reported
(``IngestReport.shift`` and ``warnings``); ingest stores what the source delivered, training
decides whether a flagged shift stops it (``settings.data.profile_block``).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from driftloop.data import partitions as parts
from driftloop.data import source
from driftloop.data.contract import FLIGHTS, PLANES, WEATHER, reference_sets
from driftloop.data.profile import compare_revisions, profile_bytes, profile_frame
from driftloop.data.repo import DataRepo
from driftloop.data.validation import ValidationResult, validate
from driftloop.errors import DataQualityError, InvalidInputError
from driftloop.months import parse_month
from driftloop.settings import Settings, get_settings

logger = logging.getLogger(__name__)

Progress = Callable[[str], None]


@dataclass
class PartitionReport:
    """One written partition: its rows, quarantine and hash."""

    kind: str
    month: str | None
    path: str
    rows_valid: int
    rows_invalid: int
    invalid_share: float
    md5: str
    changed: bool
    quarantine_path: str
    quarantine_md5: str
    #: the partition's profile in the data repository (git-tracked JSON)
    profile_path: str = ""


@dataclass
class IngestReport:
    """What an ingest did. ``partitions`` is keyed like :func:`partition_hashes`
    (``flights/2013-01``, ``weather/2013-01``, ``planes/planes``)."""

    months: list[str]
    partitions: dict[str, PartitionReport]
    revision: str
    previous_revision: str | None
    committed: bool
    data_repo: str
    remote: str
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)
    #: the ingested partitions' profiles against the revision before
    #: (:meth:`driftloop.data.profile.ShiftReport.to_dict`)
    shift: dict[str, Any] = field(default_factory=dict)

    def month(self, month: str, kind: str = "flights") -> PartitionReport:
        """The report of one month's flights (or weather) partition."""
        return self.partitions[parts.partition_key(kind, parse_month(month))]

    @property
    def changed(self) -> list[str]:
        """Keys of partitions whose hash changed (new or different content)."""
        return [key for key, p in self.partitions.items() if p.changed]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able summary (used as the flow's result)."""
        return asdict(self)


def ingest_step_count(months: list[str]) -> int:
    """How many times :func:`ingest_months` calls ``progress`` for these months."""
    return len(months) + 5


def check_months(months: list[str], settings: Settings | None = None) -> list[str]:
    """Sorted, de-duplicated months; InvalidInputError for a malformed month or one outside the
    data set (settings.data.first_month..last_month), NotFoundError for a missing data set."""
    settings = settings or get_settings()
    if not months:
        raise InvalidInputError("no months to ingest: give --from and --to, e.g. 2013-01")
    first, last = parse_month(settings.data.first_month), parse_month(settings.data.last_month)
    out = sorted({parse_month(m) for m in months})
    for month in out:
        if not first <= month <= last:
            raise InvalidInputError(f"month {month} is outside the data set ({first}..{last})")
    source.table_path("flights", settings)  # the data set folder and file exist
    return out


def _year_month(raw: pd.DataFrame) -> pd.Series:
    """``YYYYMM`` of each raw row from its year/month columns (NaN when unreadable)."""
    year = pd.to_numeric(raw["year"], errors="coerce")
    month = pd.to_numeric(raw["month"], errors="coerce")
    return (year * 100 + month).where(month.between(1, 12))


def _rows_of(raw: pd.DataFrame, year_month: pd.Series, month: str) -> pd.DataFrame:
    return raw[year_month == int(month.replace("-", ""))]


@dataclass
class _Validated:
    kind: str
    month: str | None
    result: ValidationResult
    frame: pd.DataFrame | None = None


def _validate_all(
    months: list[str], settings: Settings, step: Progress, warnings: list[str]
) -> list[_Validated]:
    step("read the data set")
    flights = source.read_table("flights", settings)
    weather = source.read_table("weather", settings)
    planes = source.read_table("planes", settings)
    refs = reference_sets({"airlines": source.read_table("airlines", settings)})
    flight_months, weather_months = _year_month(flights), _year_month(weather)
    unassigned = int(flight_months.isna().sum())
    if unassigned:
        msg = f"{unassigned} flights rows have no readable year/month and belong to no partition"
        logger.warning(msg)
        warnings.append(msg)
    out: list[_Validated] = []
    for month in months:
        step(f"validate {month}")
        flights_result = validate(FLIGHTS, _rows_of(flights, flight_months, month), refs)
        if flights_result.rows_valid + flights_result.rows_invalid == 0:
            raise InvalidInputError(
                f"month {month} has no flights in {source.table_path('flights', settings)}"
            )
        out.append(_Validated("flights", month, flights_result))
        out.append(
            _Validated(
                "weather", month, validate(WEATHER, _rows_of(weather, weather_months, month))
            )
        )
    step("validate planes")
    out.append(_Validated("planes", None, validate(PLANES, planes)))
    return out


def _enforce_limit(checked: list[_Validated], settings: Settings) -> None:
    limit = settings.data.max_invalid_share
    over = [v for v in checked if v.result.invalid_share > limit]
    if not over:
        return
    rejected = settings.state / "rejected"
    rejected.mkdir(parents=True, exist_ok=True)
    for v in over:
        name = Path(parts.quarantine_path(v.kind, v.month)).name
        _write_atomic(rejected / name, parts.quarantine_bytes(v.result.quarantine))
    worst = max(over, key=lambda v: v.result.invalid_share)
    r = worst.result
    where = f"{worst.kind} {worst.month}" if worst.month else worst.kind
    others = f" (and {len(over) - 1} more partitions)" if len(over) > 1 else ""
    raise DataQualityError(
        f"{where}: invalid share {r.invalid_share:.4f} ({r.rows_invalid} of "
        f"{r.rows_valid + r.rows_invalid} rows) is above the limit "
        f"max_invalid_share={limit:g}{others}; nothing was ingested; invalid rows and reasons "
        f"are in {rejected}"
    )


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _frame(v: _Validated) -> pd.DataFrame:
    build = {"flights": parts.flights_frame, "weather": parts.weather_frame}
    return build.get(v.kind, parts.planes_frame)(v.result.valid)


def _commit_message(months: list[str], changed_files: list[str]) -> str:
    span = months[0] if len(months) == 1 else f"{months[0]}..{months[-1]}"
    changed = [p.removesuffix(".parquet") for p in changed_files] or ["nothing"]
    return f"ingest {span}: changed {', '.join(changed)}"


def ingest_months(
    months: list[str], settings: Settings | None = None, progress: Progress | None = None
) -> IngestReport:
    """Validate, quarantine, write and version the given months (``YYYY-MM``) plus planes.

    Re-ingesting unchanged input is a no-op (same hashes, no commit). Raises InvalidInputError
    for months outside the data set, DataQualityError when a partition's invalid share is above
    ``settings.data.max_invalid_share`` (nothing is written to the data repository then).
    """
    settings = settings or get_settings()
    step: Progress = progress or (lambda _msg: None)
    started = time.perf_counter()
    months = check_months(months, settings)
    warnings: list[str] = []
    checked = _validate_all(months, settings, step, warnings)
    _enforce_limit(checked, settings)

    step("write partitions")
    files: dict[str, bytes] = {}
    profiles: dict[str, bytes] = {}
    for v in checked:
        frame = _frame(v)
        files[parts.partition_path(v.kind, v.month)] = parts.parquet_bytes(
            frame, parts.SCHEMAS[v.kind]
        )
        files[parts.quarantine_path(v.kind, v.month)] = parts.quarantine_bytes(v.result.quarantine)
        profiles[parts.profile_path(v.kind, v.month)] = profile_bytes(
            profile_frame(frame, v.kind, v.month)
        )

    repo = DataRepo(settings)
    with repo.locked():
        repo.ensure()
        previous = repo.revision()
        recorded = {path: repo.recorded_md5(path) for path in files}
        to_add: list[str] = []
        for path, data in files.items():
            target = repo.root / path
            on_disk_same = target.is_file() and parts.md5(target.read_bytes()) == parts.md5(data)
            if not on_disk_same:
                _write_atomic(target, data)
            if not on_disk_same or recorded[path] != parts.md5(data):
                to_add.append(path)
        # Profiles are small JSON kept in git (the commit stages them), not DVC.
        for path, data in profiles.items():
            target = repo.root / path
            if not target.is_file() or target.read_bytes() != data:
                _write_atomic(target, data)
        changed_profiles = [
            p for p, data in profiles.items() if repo.show(p, previous) != data.decode()
        ]
        step("dvc add and push")
        repo.add_and_push(to_add)
        changed_files = [p for p, data in files.items() if recorded[p] != parts.md5(data)]
        step("commit")
        committed = repo.commit(_commit_message(months, changed_files + changed_profiles))
        revision = repo.revision()
    shift = compare_revisions(
        [(v.kind, v.month) for v in checked],
        settings,
        revision,
        previous,
        "the revision before this ingest",
    )
    for line in shift.findings():
        logger.warning("data profile shift: %s", line)
        warnings.append(f"profile shift: {line}")

    reports: dict[str, PartitionReport] = {}
    for v in checked:
        path, qpath = parts.partition_path(v.kind, v.month), parts.quarantine_path(v.kind, v.month)
        digest = parts.md5(files[path])
        reports[parts.partition_key(v.kind, v.month)] = PartitionReport(
            kind=v.kind,
            month=v.month,
            path=path,
            rows_valid=v.result.rows_valid,
            rows_invalid=v.result.rows_invalid,
            invalid_share=v.result.invalid_share,
            md5=digest,
            changed=recorded[path] != digest,
            quarantine_path=qpath,
            quarantine_md5=parts.md5(files[qpath]),
            profile_path=parts.profile_path(v.kind, v.month),
        )
    report = IngestReport(
        months=months,
        partitions=reports,
        revision=revision,
        previous_revision=previous,
        committed=committed,
        data_repo=str(repo.root),
        remote=repo.remote_url,
        seconds=round(time.perf_counter() - started, 3),
        warnings=warnings,
        shift=shift.to_dict(),
    )
    logger.info(
        "ingested %s: %d partitions changed, revision %s (%.1f s)",
        ",".join(months),
        len(report.changed),
        revision[:12],
        report.seconds,
    )
    return report
