"""The KPIs are declared once (``settings.kpi``); the old per-section names still work as
deprecated aliases that feed the KPI and always read it."""

from __future__ import annotations

import pytest

from driftloop.settings import (
    LEGACY_KPI_FIELDS,
    KpiSettings,
    MonitoringSettings,
    RolloutSettings,
    Settings,
    TrainingSettings,
)

OLD_ENV = {
    "DRIFTLOOP_TRAINING__COST_FALSE_NEGATIVE": ("cost_false_negative", "8"),
    "DRIFTLOOP_TRAINING__COST_FALSE_POSITIVE": ("cost_false_positive", "2"),
    "DRIFTLOOP_MONITORING__MIN_AUC": ("min_auc", "0.65"),
    "DRIFTLOOP_MONITORING__MAX_AUC_DROP": ("max_auc_drop", "0.05"),
    "DRIFTLOOP_MONITORING__MAX_CALIBRATION_GAP": ("max_calibration_gap", "0.07"),
    "DRIFTLOOP_ROLLOUT__ERROR_RATE_GUARD": ("max_error_rate", "0.1"),
}


def _aliases(s: Settings) -> dict[str, float]:
    """What the deprecated names read, by KPI field."""
    return {new: getattr(getattr(s, sec), old) for (sec, old), new in LEGACY_KPI_FIELDS.items()}


def test_every_deprecated_name_has_a_kpi_and_reads_its_value() -> None:
    s = Settings(kpi={"min_auc": 0.7, "cost_false_negative": 3.0, "max_error_rate": 0.2})
    assert set(LEGACY_KPI_FIELDS.values()) <= set(KpiSettings.model_fields)
    assert _aliases(s) == {k: getattr(s.kpi, k) for k in _aliases(s)}
    assert (s.monitoring.min_auc, s.training.cost_false_negative) == (0.7, 3.0)
    assert s.rollout.error_rate_guard == 0.2


def test_kpi_environment_variables_set_the_kpis(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIFTLOOP_KPI__MIN_AUC", "0.72")
    monkeypatch.setenv("DRIFTLOOP_KPI__P99_LATENCY_MS", "250")
    monkeypatch.setenv("DRIFTLOOP_KPI__MAX_ERROR_RATE", "0.02")
    s = Settings()
    assert (s.kpi.min_auc, s.kpi.p99_latency_ms, s.kpi.max_error_rate) == (0.72, 250.0, 0.02)
    assert s.monitoring.min_auc == 0.72
    assert s.rollout.error_rate_guard == 0.02


def test_old_environment_variables_still_apply_with_a_deprecation_warning(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for key, (_, value) in OLD_ENV.items():
        monkeypatch.setenv(key, value)
    with pytest.warns(DeprecationWarning, match="monitoring.min_auc -> kpi.min_auc"):
        s = Settings()
    assert {k: getattr(s.kpi, k) for k, _ in OLD_ENV.values()} == {
        k: float(v) for k, v in OLD_ENV.values()
    }
    assert _aliases(s) == {k: float(v) for k, v in OLD_ENV.values()}


def test_a_kpi_set_under_both_names_takes_the_new_one_and_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DRIFTLOOP_MONITORING__MIN_AUC", "0.65")
    monkeypatch.setenv("DRIFTLOOP_KPI__MIN_AUC", "0.7")
    with pytest.warns(DeprecationWarning, match=r"ignored monitoring\.min_auc"):
        s = Settings()
    assert s.kpi.min_auc == s.monitoring.min_auc == 0.7


def test_defaults_warn_about_nothing() -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = Settings()
    assert s.kpi == KpiSettings()
    assert (s.kpi.cost_false_negative, s.kpi.cost_false_positive) == (5.0, 1.0)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("DRIFTLOOP_KPI__MAX_ERROR_RATE", "1.5"),
        ("DRIFTLOOP_KPI__MIN_AUC", "1.2"),
        ("DRIFTLOOP_KPI__COST_FALSE_NEGATIVE", "0"),
        ("DRIFTLOOP_KPI__P99_LATENCY_MS", "-1"),
    ],
)
def test_impossible_kpis_are_refused_naming_the_field(
    monkeypatch: pytest.MonkeyPatch, key: str, value: str
) -> None:
    monkeypatch.setenv(key, value)
    field = key.removeprefix("DRIFTLOOP_KPI__").lower()
    with pytest.raises(ValueError, match=field):
        Settings()


def test_a_section_passed_in_is_not_changed_by_the_kpi_mirroring() -> None:
    monitoring = MonitoringSettings(min_rows=10)
    s = Settings(kpi={"min_auc": 0.8}, monitoring=monitoring)
    assert s.monitoring.min_auc == 0.8
    assert s.monitoring.min_rows == 10
    assert monitoring.min_auc == 0.6  # the caller's object keeps its value


def test_kpis_from_old_sections_for_records_stored_before_the_kpi_section() -> None:
    kpi = KpiSettings.from_sections(
        training=TrainingSettings(cost_false_negative=7.0),
        monitoring=MonitoringSettings(max_auc_drop=0.01),
        rollout=RolloutSettings(error_rate_guard=0.3),
    )
    assert (kpi.cost_false_negative, kpi.max_auc_drop, kpi.max_error_rate) == (7.0, 0.01, 0.3)
    assert kpi.min_auc == KpiSettings().min_auc  # not given: the default
