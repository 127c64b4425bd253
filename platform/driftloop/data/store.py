"""Read side of the data repository: partitions (working tree or any revision), their hashes
for lineage, the current revision and the ingested months."""

from __future__ import annotations

import io
import logging
from typing import Literal

import pandas as pd
import pyarrow.parquet as pq

from driftloop.data import partitions as parts
from driftloop.data.repo import DataRepo
from driftloop.errors import DataQualityError, InvalidInputError, NotFoundError
from driftloop.months import parse_month
from driftloop.settings import Settings, get_settings

logger = logging.getLogger(__name__)


def _not_ingested(month: str, rev: str | None) -> NotFoundError:
    at = f" at data revision {rev}" if rev else ""
    return NotFoundError(
        f"month {month} is not ingested{at}; run driftloop ingest --from {month} --to {month}"
    )


def _months_at(repo: DataRepo, kind: str, rev: str | None) -> list[str]:
    files = repo.list_files(kind, rev)
    return [f.split("/")[-1].removesuffix(".parquet.dvc") for f in files]


def _read(repo: DataRepo, path: str, rev: str | None) -> pd.DataFrame:
    if rev is None and not (repo.root / path).is_file():
        # Tracked but absent from the working tree (e.g. deleted): read the committed version.
        logger.warning("%s is missing from the working tree; reading it from HEAD", path)
        rev = "HEAD"
    data = repo.read_bytes(path, rev)
    if rev is None:
        recorded = repo.recorded_md5(path)
        if recorded is not None and recorded != parts.md5(data):
            raise DataQualityError(
                f"{repo.root / path} differs from its recorded DVC hash {recorded}; restore it "
                f"with `dvc checkout` in {repo.root} or ingest again"
            )
    return pq.read_table(io.BytesIO(data)).to_pandas()


def load_partitions(
    kind: Literal["flights", "weather", "planes"],
    months: list[str] | None = None,
    settings: Settings | None = None,
    rev: str | None = None,
) -> pd.DataFrame:
    """Partitions of ``kind`` for ``months`` (None: every ingested month) as one frame.

    ``rev`` None reads the working tree of the data repository; a revision (commit hash, prefix,
    ``HEAD~1`` …) reads that version through DVC. ``planes`` ignores ``months``. Raises
    NotFoundError for a month that was never ingested (at that revision).
    """
    if kind not in parts.KINDS:
        raise InvalidInputError(f"unknown partition kind {kind!r}: use flights, weather or planes")
    settings = settings or get_settings()
    repo = DataRepo(settings)
    repo.require()
    commit = repo.resolve(rev) if rev is not None else None
    if kind == "planes":
        path = parts.partition_path("planes", None)
        if repo.recorded_md5(path, commit) is None:
            raise NotFoundError(
                "planes are not ingested; run driftloop ingest --from 2013-01 --to 2013-01"
            )
        return _read(repo, path, commit)
    present = _months_at(repo, kind, commit)
    wanted = present if months is None else [parse_month(m) for m in months]
    frames = []
    for month in wanted:
        if month not in present:
            raise _not_ingested(month, rev)
        frames.append(_read(repo, parts.partition_path(kind, month), commit))
    if not frames:
        return parts.SCHEMAS[kind].empty_table().to_pandas()
    return pd.concat(frames, ignore_index=True)


def load_quarantine(
    kind: Literal["flights", "weather", "planes"],
    month: str | None = None,
    settings: Settings | None = None,
    rev: str | None = None,
) -> pd.DataFrame:
    """The quarantined rows of one partition: raw values as text, ``source_row``, ``reason``."""
    settings = settings or get_settings()
    repo = DataRepo(settings)
    repo.require()
    commit = repo.resolve(rev) if rev is not None else None
    normalised = None if kind == "planes" else parse_month(month or "")
    path = parts.quarantine_path(kind, normalised)
    if repo.recorded_md5(path, commit) is None:
        raise _not_ingested(normalised or "planes", rev)
    return _read(repo, path, commit)


def partition_hashes(
    months: list[str] | None = None, settings: Settings | None = None, rev: str | None = None
) -> dict[str, str]:
    """md5 (DVC hash) of each partition, keyed ``flights/2013-01``, ``weather/2013-01`` and
    ``planes/planes``: in the working tree, or as recorded at data revision ``rev`` (months None:
    every ingested month)."""
    settings = settings or get_settings()
    repo = DataRepo(settings)
    repo.require()
    commit = repo.resolve(rev) if rev is not None else None
    wanted = (
        _months_at(repo, "flights", commit) if months is None else [parse_month(m) for m in months]
    )
    out: dict[str, str] = {}
    for month in wanted:
        for kind in ("flights", "weather"):
            md5 = repo.recorded_md5(parts.partition_path(kind, month), commit)
            if md5 is None:
                raise _not_ingested(month, rev)
            out[parts.partition_key(kind, month)] = md5
    planes = repo.recorded_md5(parts.partition_path("planes", None), commit)
    if planes is not None:
        out[parts.partition_key("planes", None)] = planes
    return out


def data_revision(settings: Settings | None = None) -> str:
    """The current git commit of the data repository (the data version for lineage)."""
    return DataRepo(settings or get_settings()).revision()


def available_months(settings: Settings | None = None) -> list[str]:
    """Months whose flights partition is ingested (working tree), sorted; [] before any ingest."""
    repo = DataRepo(settings or get_settings())
    if not repo.exists:
        return []
    return _months_at(repo, "flights", None)
