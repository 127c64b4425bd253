"""What a training run reads: the training window and holdout frames (Feast, point in time) and
the lineage of both (data revision, DVC partition hashes, feature service and its features)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import pandas as pd

from driftloop.data.store import available_months, data_revision, load_partitions, partition_hashes
from driftloop.errors import NotFoundError, TrainingError
from driftloop.features.repo import feature_service_info
from driftloop.features.training import build_training_frame, training_frame_from_flights
from driftloop.months import month_range, next_month
from driftloop.schema import EVENT_TIMESTAMP, FEATURE_COLUMNS
from driftloop.settings import Settings, get_settings

logger = logging.getLogger(__name__)


@dataclass
class TrainingData:
    """Frames and lineage of one training run."""

    train: pd.DataFrame
    holdout: pd.DataFrame
    months: list[str]
    holdout_month: str
    data_rev: str = "unknown"
    data_hashes: dict[str, str] = field(default_factory=dict)
    feature_service: str = ""
    features: list[str] = field(default_factory=lambda: list(FEATURE_COLUMNS))

    @property
    def window(self) -> str:
        return f"{self.months[0]}..{self.months[-1]}"

    def split_validation(self, share: float) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(fit rows, validation rows): the latest ``share`` of the window validates."""
        ordered = self.train.sort_values(EVENT_TIMESTAMP, kind="mergesort")
        cut = round(len(ordered) * (1 - share))
        if cut <= 0 or cut >= len(ordered):
            raise TrainingError(f"{len(ordered)} training rows are too few to hold out {share:g}")
        return ordered.iloc[:cut], ordered.iloc[cut:]


def _check_months(months: list[str], holdout: str, settings: Settings, rev: str | None) -> None:

    if rev is not None:
        return  # load_partitions(rev=...) names a month missing at that revision
    present = set(available_months(settings))
    missing = [m for m in months if m not in present]
    if missing:
        have = f"{min(present)}..{max(present)}" if present else "none"
        raise TrainingError(
            f"training window {months[0]}..{months[-1]} has no data for {', '.join(missing)} "
            f"(ingested months: {have}); run driftloop ingest first"
        )
    if holdout not in present:
        raise TrainingError(
            f"holdout month {holdout} (the month after the window) is not ingested; "
            f"run driftloop ingest --from {holdout} --to {holdout} or end the window earlier"
        )


def _frame(months: list[str], settings: Settings, rev: str | None) -> pd.DataFrame:

    if rev is None:
        return build_training_frame(months, settings)
    flights = load_partitions("flights", months, settings=settings, rev=rev)
    return training_frame_from_flights(flights, settings)


def load_training_data(
    start_month: str, end_month: str, settings: Settings | None = None, rev: str | None = None
) -> TrainingData:
    """Frames of the window and of the holdout month after it, with their lineage.

    ``rev`` rebuilds both from the partitions recorded at that data revision (reproduce).
    """
    settings = settings or get_settings()
    months = month_range(start_month, end_month)
    holdout_month = next_month(months[-1])
    service, features = feature_service_info(settings)
    _check_months(months, holdout_month, settings, rev)

    try:
        train = _frame(months, settings, rev)
        holdout = _frame([holdout_month], settings, rev)
    except NotFoundError as exc:
        raise TrainingError(f"no training data: {exc}") from None
    if train.empty:
        raise TrainingError(f"training window {months[0]}..{months[-1]} has no labelled flights")
    if holdout.empty:
        raise TrainingError(f"holdout month {holdout_month} has no labelled flights")
    if rev is None:
        data_rev, hashes = (
            data_revision(settings),
            partition_hashes([*months, holdout_month], settings),
        )
    else:
        data_rev = rev
        hashes = partition_hashes([*months, holdout_month], settings, rev=rev)
    logger.info(
        "training data %s..%s: %d rows, holdout %s: %d rows (data rev %s)",
        months[0],
        months[-1],
        len(train),
        holdout_month,
        len(holdout),
        data_rev[:10],
    )
    return TrainingData(
        train=train,
        holdout=holdout,
        months=months,
        holdout_month=holdout_month,
        data_rev=data_rev,
        data_hashes=hashes,
        feature_service=service,
        features=features,
    )
