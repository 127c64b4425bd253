"""The chart's operations dashboard and alerts (values ``observability``): the Grafana dashboard
ConfigMap carries the sidecar's label and exactly the repository's dashboards/driftloop.json;
the PrometheusRule is rendered only when the cluster serves its CRD; both are off by default;
every metric an alert names is one the dashboard names (and those are checked against a real
server's /metrics by tests/integration/serving/test_docs_dashboard.py)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from chart_support import CHART, ROOT

pytestmark = pytest.mark.helm

Doc = dict[str, Any]
RULE_API = "monitoring.coreos.com/v1/PrometheusRule"
ON = (
    "--set",
    "observability.grafanaDashboard.enabled=true",
    "--set",
    "observability.prometheusRule.enabled=true",
)
METRIC = re.compile(r"\bdriftloop_[a-z0-9_]+")


def _kind(docs: list[Doc], kind: str) -> list[Doc]:
    return [d for d in docs if d.get("kind") == kind]


def _dashboard_metrics() -> set[str]:
    dashboard = json.loads((ROOT / "dashboards" / "driftloop.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    return {m for e in exprs for m in METRIC.findall(e)}


def test_off_by_default(render: Callable[..., list[Doc]]) -> None:
    docs = render("default", "1.31.0", "--api-versions", RULE_API)
    assert not _kind(docs, "PrometheusRule")
    assert not [d for d in _kind(docs, "ConfigMap") if "driftloop.json" in d.get("data", {})]


def test_dashboard_configmap_for_the_grafana_sidecar(render: Callable[..., list[Doc]]) -> None:
    docs = render("default", "1.31.0", *ON)
    (cm,) = [d for d in _kind(docs, "ConfigMap") if "driftloop.json" in d.get("data", {})]
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    shipped = json.loads(cm["data"]["driftloop.json"])
    assert shipped == json.loads((ROOT / "dashboards" / "driftloop.json").read_text())
    assert (CHART / "dashboards" / "driftloop.json").resolve() == (
        ROOT / "dashboards" / "driftloop.json"
    ).resolve()


def test_prometheus_rule_only_with_its_crd(render: Callable[..., list[Doc]]) -> None:
    assert not _kind(render("default", "1.31.0", *ON), "PrometheusRule")
    docs = render(
        "default",
        "1.31.0",
        *ON,
        "--api-versions",
        RULE_API,
        "--set",
        'observability.prometheusRule.selector=namespace="ml"',
        "--set-json",
        "observability.prometheusRule.driftShare=0.4",
    )
    (rule,) = _kind(docs, "PrometheusRule")
    rules = [r for g in rule["spec"]["groups"] for r in g["rules"]]
    alerts = {r["alert"] for r in rules}
    assert {
        "DriftloopHighErrorRatio",
        "DriftloopDataDrift",
        "DriftloopRetrainFailed",
        "DriftloopRolledBack",
        "DriftloopCaptureDropping",
    } <= alerts
    named = {m for r in rules for m in METRIC.findall(r["expr"])}
    assert named <= _dashboard_metrics(), named - _dashboard_metrics()
    for r in rules:  # the selector reaches every query
        for selector in re.findall(r"driftloop_[a-z0-9_]+(\{[^}]*\})?", r["expr"]):
            assert 'namespace="ml"' in selector, r["expr"]
    drift = next(r for r in rules if r["alert"] == "DriftloopDataDrift")
    assert drift["expr"].endswith(">= 0.4")
