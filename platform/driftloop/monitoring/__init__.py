"""Monitoring: the only package that imports evidently (in :mod:`.adapter`, lazily).

Public API (names resolve on first use so ``import driftloop.monitoring`` stays light)::

    compute_drift(reference, current, settings.monitoring) -> DriftReport   (adapter)
    judge_drift(summary, settings.monitoring) -> DriftVerdict                    (judge)
    run_monitor(settings, start, end, model_version) -> MonitorResult       (monitor)
    save_report / list_reports / get_report / open_report                   (reports)
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ColumnDrift": "driftloop.monitoring.adapter",
    "DriftReport": "driftloop.monitoring.adapter",
    "DriftSummary": "driftloop.monitoring.adapter",
    "compute_drift": "driftloop.monitoring.adapter",
    "DriftVerdict": "driftloop.monitoring.judge",
    "judge_drift": "driftloop.monitoring.judge",
    "MonitorResult": "driftloop.monitoring.monitor",
    "retrain_window": "driftloop.monitoring.monitor",
    "run_monitor": "driftloop.monitoring.monitor",
    "ReportInfo": "driftloop.monitoring.reports",
    "get_report": "driftloop.monitoring.reports",
    "list_reports": "driftloop.monitoring.reports",
    "open_report": "driftloop.monitoring.reports",
    "save_report": "driftloop.monitoring.reports",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'driftloop.monitoring' has no attribute {name!r}")
