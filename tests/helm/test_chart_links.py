"""Links a person opens from what a flow run writes in the cluster (drift report, MLflow version
and run pages, Prefect run pages): the flow-run Jobs and the monitoring CronJob are told the
browser-facing MLflow and Prefect URLs (``mlflow.publicUrl``, else the Ingress hosts, else
127.0.0.1 for ``kubectl port-forward``), never the in-cluster Service address they use
themselves."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

pytestmark = pytest.mark.helm

Doc = dict[str, Any]
KEYS = ("DRIFTLOOP_MLFLOW__PUBLIC_URL", "PREFECT_UI_URL")


def _env(container: Doc) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container["env"]}


def _flow_run_env(docs: list[Doc]) -> dict[str, str]:
    """The env of the flow-run Job's container (the worker's base job template)."""
    (cm,) = [d for d in docs if d["kind"] == "ConfigMap" and "base-job-template.json" in d["data"]]
    template = json.loads(cm["data"]["base-job-template.json"])
    pod = template["job_configuration"]["job_manifest"]["spec"]["template"]["spec"]
    (container,) = [c for c in pod["containers"] if c["name"] == "prefect-job"]
    return _env(container)


def _links(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k in KEYS}


def _cronjob_env(docs: list[Doc]) -> dict[str, str]:
    (cron,) = [d for d in docs if d["kind"] == "CronJob" and "monitoring" in d["metadata"]["name"]]
    (container,) = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    return _env(container)


def test_port_forward_urls_without_an_ingress(render: Callable[..., list[Doc]]) -> None:
    docs = render("default")
    env = _flow_run_env(docs)
    assert _links(env) == {
        "DRIFTLOOP_MLFLOW__PUBLIC_URL": "http://127.0.0.1:5000",
        "PREFECT_UI_URL": "http://127.0.0.1:4200",
    }
    # the pod itself reaches MLflow at the Service: that is not what links use
    assert "127.0.0.1" not in env["DRIFTLOOP_MLFLOW__TRACKING_URI"]


def test_ingress_hosts_when_exposed(render: Callable[..., list[Doc]]) -> None:
    docs = render("ingress-autoscaling")
    expected = {
        "DRIFTLOOP_MLFLOW__PUBLIC_URL": "https://mlflow.driftloop.example",
        "PREFECT_UI_URL": "https://prefect.driftloop.example",
    }
    assert _links(_flow_run_env(docs)) == expected


def test_public_url_wins_and_reaches_the_monitoring_cronjob(
    render: Callable[..., list[Doc]],
) -> None:
    docs = render(
        "default",
        "1.31.0",
        "--set",
        "mlflow.publicUrl=https://ml.corp.example/mlflow/",
        "--set",
        "monitoring.mode=cronjob",
    )
    assert _flow_run_env(docs)["DRIFTLOOP_MLFLOW__PUBLIC_URL"] == "https://ml.corp.example/mlflow"
    assert _cronjob_env(docs)["DRIFTLOOP_MLFLOW__PUBLIC_URL"] == "https://ml.corp.example/mlflow"


def test_public_url_must_be_http(helm_bin: Any) -> None:
    from chart_support import CHART, run_helm

    proc = run_helm(helm_bin, "template", "rel", str(CHART), "--set", "mlflow.publicUrl=/tmp/x")
    assert proc.returncode != 0
    assert "publicUrl" in proc.stderr


def test_the_prefect_server_serves_the_ui_that_calls_no_analytics_host(
    render: Callable[..., list[Doc]],
) -> None:
    """The chart's Prefect server gets the embedded server's UI switches (settings.QUIET_ENV):
    Prefect's v2 UI fetches an analytics SDK's config from amplitude.com (issue 14)."""
    from driftloop.settings import QUIET_ENV

    (server,) = [
        d
        for d in render("default")
        if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("prefect-server")
    ]
    env = _env(server["spec"]["template"]["spec"]["containers"][0])
    switches = {k: v for k, v in QUIET_ENV.items() if k.startswith("PREFECT_SERVER_UI_")}
    assert switches == {
        "PREFECT_SERVER_UI_V2_ENABLED": "false",
        "PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT": "false",
    }
    assert {k: env.get(k) for k in switches} == switches
