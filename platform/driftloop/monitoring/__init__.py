"""Monitoring: the only package that imports evidently (in :mod:`.adapter`, lazily).

Modules (nothing is re-exported here: import from the module that owns a name)::

    adapter  compute_drift(reference, current, settings.monitoring) -> DriftReport
    judge    judge(JudgeInputs, settings.monitoring) -> DriftVerdict (KPI, important drift)
    monitor  run_monitor(settings, start, end, model_version) -> MonitorResult
    reports  save_report / list_reports / get_report / open_report
    canary          the evidence of a canary per variant, from the inference log
    noninferiority  decide(evidence, settings.rollout) -> CanaryDecision; rollout_status
    performance     label-free (CBPE) and observed performance with intervals
"""
