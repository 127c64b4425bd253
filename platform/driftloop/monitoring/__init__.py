"""Monitoring: the only package that imports evidently (in :mod:`.adapter`, lazily).

Modules (nothing is re-exported here: import from the module that owns a name)::

    adapter  compute_drift(reference, current, settings.monitoring) -> DriftReport
    judge    judge_drift(summary, settings.monitoring) -> DriftVerdict
    monitor  run_monitor(settings, start, end, model_version) -> MonitorResult
    reports  save_report / list_reports / get_report / open_report
    canary   live numbers per variant of a canary; rollout_status
"""
