"""The closed loop's figures as the serving process sees them: the last monitor verdicts (drift
share, estimated and observed ROC AUC), rollout decisions and retrains of the served model,
read from the records the loop keeps in the shared state directory:

* ``{state}/decisions/decisions.jsonl``: one line per monitor verdict and rollout decision
  (written by :mod:`driftloop.loop.decisions`);
* ``{state}/loop/retrains.jsonl``: one line per state change of a retrain (written by
  :mod:`driftloop.loop.ledger`; the latest line of an id is its state).

Serving sits below the loop in the import layers, so it reads the files itself (their paths are
checked against the loop's own in the tests). A file is re-read only when its size or mtime
changed, so a scrape every few seconds costs a ``stat``. On ``/metrics``
(:class:`LoopCollector`), for the served model only:

* ``driftloop_monitor_drift_share{model_version}``: share of drifted features, last window
* ``driftloop_monitor_estimated_auc{model_version}``: label-free ROC AUC estimate, last window
* ``driftloop_monitor_observed_auc{model_version}``: ROC AUC on the labels, last window
* ``driftloop_monitor_kpi_auc``: the AUC the last verdict held the model to
* ``driftloop_monitor_last_run_timestamp_seconds``
* ``driftloop_monitor_verdicts_total{decision}``: ``ok``, ``retrain``, ``insufficient_data`` ...
* ``driftloop_rollout_decisions_total{decision}``: ``promote``, ``rollback``, ``continue`` ...
* ``driftloop_retrains{status}`` (gauge): retrains in the ledger by their latest state,
  ``started``, ``finished``, ``failed``, ``skipped``, ``expired``
* ``driftloop_retrains_requested_total``: retrains requested, any outcome

Counters restart from the records left when housekeeping archives them (Prometheus reads a
drop as a counter reset).
"""

from __future__ import annotations

import json
import logging
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from driftloop.settings import Settings

logger = logging.getLogger(__name__)


def decisions_file(settings: Settings) -> Path:
    return settings.state / "decisions" / "decisions.jsonl"


def retrains_file(settings: Settings) -> Path:
    return settings.state / "loop" / "retrains.jsonl"


class JsonLines:
    """The records of one JSON-lines file, re-read when it changes (thread-safe: scrapes and
    page views may come at once). Unreadable lines (a writer killed mid-line) are skipped."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._records: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def read(self) -> list[dict[str, Any]]:
        with self._lock:
            try:
                stat = self.path.stat()
            except FileNotFoundError:
                self._stamp, self._records = None, []
                return []
            stamp = (stat.st_size, stat.st_mtime_ns)
            if stamp != self._stamp:
                records = []
                for line in self.path.read_text(encoding="utf-8", errors="replace").splitlines():
                    try:
                        record = json.loads(line)
                    except ValueError:
                        continue
                    if isinstance(record, dict):
                        records.append(record)
                self._stamp, self._records = stamp, records
            return self._records


@dataclass(frozen=True)
class MonitorWindow:
    """One monitor verdict of the served model."""

    created: str
    version: str
    decision: str
    reason: str
    start: str | None
    end: str | None
    rows: int | None
    drift_share: float | None
    estimated_auc: float | None
    observed_auc: float | None
    kpi_auc: float | None


@dataclass(frozen=True)
class LoopFigures:
    """What the loop decided for the served model, oldest first."""

    monitor: list[MonitorWindow] = field(default_factory=list)
    rollouts: list[dict[str, Any]] = field(default_factory=list)
    retrains: list[dict[str, Any]] = field(default_factory=list)

    def verdicts(self) -> Counter[str]:
        return Counter(w.decision for w in self.monitor)

    def rollout_decisions(self) -> Counter[str]:
        return Counter(str(r.get("decision")) for r in self.rollouts)

    def retrain_states(self) -> Counter[str]:
        return Counter(str(r.get("status")) for r in self.retrains)


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _estimate(interval: Any) -> float | None:
    return _number(interval.get("estimate")) if isinstance(interval, dict) else None


def monitor_window(record: dict[str, Any]) -> MonitorWindow:
    """A monitor decision record as the figures the dashboard shows."""
    inputs = _mapping(record.get("inputs"))
    judged = _mapping(inputs.get("judge"))
    window = _mapping(inputs.get("window"))
    numbers = _mapping(_mapping(record.get("outputs")).get("numbers"))
    rows = judged.get("rows")
    return MonitorWindow(
        created=str(record.get("created", "")),
        version=str(_mapping(record.get("versions")).get("judged", "")),
        decision=str(record.get("decision", "")),
        reason=str(record.get("reason", "")),
        start=window.get("start"),
        end=window.get("end"),
        rows=rows if isinstance(rows, int) else None,
        drift_share=_number(judged.get("drift_share")),
        estimated_auc=_estimate(judged.get("estimated_auc")),
        observed_auc=_estimate(judged.get("observed_auc")),
        kpi_auc=_number(numbers.get("kpi_auc")),
    )


class LoopState:
    """Reads the loop's records for ``settings.mlflow.registered_model``."""

    def __init__(self, settings: Settings) -> None:
        self.model = settings.mlflow.registered_model
        self._decisions = JsonLines(decisions_file(settings))
        self._retrains = JsonLines(retrains_file(settings))

    def figures(self) -> LoopFigures:
        mine = [r for r in self._decisions.read() if r.get("model") == self.model]
        latest: dict[str, dict[str, Any]] = {}
        for record in self._retrains.read():
            if record.get("model") == self.model and "id" in record:
                latest[str(record["id"])] = record
        return LoopFigures(
            monitor=[monitor_window(r) for r in mine if r.get("kind") == "monitor"],
            rollouts=[r for r in mine if r.get("kind") == "rollout"],
            retrains=sorted(latest.values(), key=lambda r: str(r.get("requested_at", ""))),
        )


def _timestamp(iso: str) -> float | None:
    try:
        return datetime.fromisoformat(iso).timestamp()
    except ValueError:
        return None


class LoopCollector(Collector):
    """The loop's figures on ``/metrics`` (module docstring), read at each scrape."""

    def __init__(self, settings: Settings) -> None:
        self.state = LoopState(settings)

    def collect(self) -> Iterator[Metric]:
        try:
            figures = self.state.figures()
        except Exception as exc:  # unreadable records must not break the scrape
            logger.warning("loop records unreadable: %s: %s", type(exc).__name__, exc)
            return
        by_version = ["model_version"]
        share = GaugeMetricFamily(
            "driftloop_monitor_drift_share",
            "Share of drifted features in the last monitor window.",
            labels=by_version,
        )
        estimated = GaugeMetricFamily(
            "driftloop_monitor_estimated_auc",
            "Label-free ROC AUC estimate (CBPE) of the last monitor window.",
            labels=by_version,
        )
        observed = GaugeMetricFamily(
            "driftloop_monitor_observed_auc",
            "ROC AUC on the labels of the last monitor window that had labels.",
            labels=by_version,
        )
        kpi = GaugeMetricFamily(
            "driftloop_monitor_kpi_auc", "ROC AUC the last monitor verdict held the model to."
        )
        last_run = GaugeMetricFamily(
            "driftloop_monitor_last_run_timestamp_seconds", "When the last monitor verdict was."
        )
        if figures.monitor:
            last = figures.monitor[-1]
            if last.drift_share is not None:
                share.add_metric([last.version], last.drift_share)
            if last.estimated_auc is not None:
                estimated.add_metric([last.version], last.estimated_auc)
            if last.kpi_auc is not None:
                kpi.add_metric([], last.kpi_auc)
            when = _timestamp(last.created)
            if when is not None:
                last_run.add_metric([], when)
            labelled = [w for w in figures.monitor if w.observed_auc is not None]
            if labelled and labelled[-1].observed_auc is not None:
                observed.add_metric([labelled[-1].version], labelled[-1].observed_auc)
        verdicts = CounterMetricFamily(
            "driftloop_monitor_verdicts", "Monitor verdicts, by decision.", labels=["decision"]
        )
        for decision, n in sorted(figures.verdicts().items()):
            verdicts.add_metric([decision], n)
        rollouts = CounterMetricFamily(
            "driftloop_rollout_decisions",
            "Canary rollout decisions, by decision.",
            labels=["decision"],
        )
        for decision, n in sorted(figures.rollout_decisions().items()):
            rollouts.add_metric([decision], n)
        retrains = GaugeMetricFamily(
            "driftloop_retrains", "Retrains in the ledger, by latest state.", labels=["status"]
        )
        for status, n in sorted(figures.retrain_states().items()):
            retrains.add_metric([status], n)
        requested = CounterMetricFamily(
            "driftloop_retrains_requested", "Retrains requested (any outcome)."
        )
        requested.add_metric([], len(figures.retrains))
        yield from (share, estimated, observed, kpi, last_run, verdicts, rollouts)
        yield from (retrains, requested)
