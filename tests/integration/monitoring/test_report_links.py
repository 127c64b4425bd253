"""Drift report links open over HTTP from the real MLflow server (not a ``file://`` path that
exists only where the flow ran), each page starts with the driftloop header, and the drift
summary's count of drifted features equals its list, wherever it is shown."""

from __future__ import annotations

import html
import json
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from datasets import model_input_frame

from driftloop.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def winter_vs_summer() -> Any:
    """A January reference against July traffic (many features drift; labels present)."""
    from driftloop.monitoring.adapter import compute_drift
    from driftloop.monitoring.judge import judge
    from driftloop.monitoring.monitor import judge_inputs
    from driftloop.settings import MonitoringSettings

    reference = model_input_frame(["2013-01"], n=3000, seed=1)
    current = model_input_frame(["2013-07"], n=1500, seed=2)
    monitoring = MonitoringSettings(min_rows=200, min_labeled_rows=100)
    report = compute_drift(reference, current, monitoring)
    importance = {c: 1.0 for c in report.summary.columns}
    inputs, _ = judge_inputs(reference, current, report.summary, importance, monitoring)
    return report, judge(inputs, monitoring), inputs


def test_report_link_opens_over_http_with_the_header(
    prefect_server: str,
    mlflow_server: str,
    make_settings: Callable[..., Settings],
    winter_vs_summer: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from mlflow import MlflowClient
    from prefect import flow

    from driftloop.monitoring.monitor import (
        TAG_DRIFT_LATEST,
        TAG_DRIFT_REPORT,
        MonitorResult,
        log_to_mlflow,
    )
    from driftloop.monitoring.reports import (
        HEADER_ID,
        drifted_text,
        get_report,
        save_report,
        stamp_headers,
    )
    from flows.monitor import _markdown

    key = uuid.uuid4().hex[:8]
    name = f"links-{key}"
    settings = make_settings(
        mlflow_uri=mlflow_server,
        prefect_url=prefect_server,
        mlflow={"registered_model": name, "experiment": name},
    )
    client = MlflowClient(mlflow_server)
    experiment = client.create_experiment(name)
    run = client.create_run(experiment)
    run_id = run.info.run_id
    client.create_registered_model(name)
    version = client.create_model_version(
        name, source=f"{run.info.artifact_uri}/model", run_id=run_id
    ).version
    report, verdict, inputs = winter_vs_summer
    window = {"start": "2013-07-01T00:00:00+00:00", "end": "2013-07-08T00:00:00+00:00"}
    window["months"] = ["2013-07"]

    @flow(name=f"report-links-{key}")
    def monitor_like() -> MonitorResult:  # the monitor flow's steps, on these frames
        saved = save_report(report, verdict, name, str(version), window, settings, run_id=run_id)
        result = MonitorResult(
            model_name=name,
            model_version=str(version),
            start=window["start"],
            end=window["end"],
            rows=report.summary.rows_current,
            months=window["months"],
            verdict=verdict,
            report=saved,
            drift_share=report.summary.drift_share,
            inputs=inputs,
        )
        result.mlflow_logged = log_to_mlflow(result, run_id, settings)
        return result

    state = monitor_like(return_state=True)
    result, run_of = state.result(), state.state_details.flow_run_id
    saved = result.report
    assert result.mlflow_logged
    links = saved.links
    page = f"monitoring/{saved.id}/drift.html"
    assert links["report"] == (
        f"{mlflow_server}/#/experiments/{experiment}/runs/{run_id}/artifactPath/{page}"
    )
    assert saved.url == links["report"]
    assert get_report(saved.id, settings).links == links  # kept in summary.json

    # the page a browser opens: the MLflow UI (its artifact view renders the HTML)
    ui = httpx.get(links["report"].split("#", 1)[0], timeout=30)
    assert ui.status_code == 200
    assert "<html" in ui.text.lower()
    # the report itself, over HTTP from the MLflow server, header first in its body
    got = httpx.get(links["download"], timeout=60)
    assert got.status_code == 200, got.text[:300]
    body = got.text
    assert f'id="{HEADER_ID}"' in body
    opening = body.index(">", body.index("<body")) + 1
    assert body[opening:].lstrip().startswith(f'<header id="{HEADER_ID}"')  # first in body
    header = body[body.index(HEADER_ID) : body.index("</header>")]
    assert f"{name} version {version}" in header
    assert f">{verdict.status}</span>" in header
    assert "Window 2013-07-01 00:00 UTC .. 2013-07-08 00:00 UTC (data months 2013-07)" in header
    # a verdict that asks for a retrain says the guards decide whether one starts (a report of
    # a retrain suppressed by the cooldown read "(retrain)" as if one had started)
    assert verdict.retrain
    assert "asks for a retrain" in header
    assert "cooldown" in header
    for reason in verdict.reasons:
        assert html.escape(reason) in header
    assert html.escape(drifted_text(report.summary)) in header
    assert html.escape(links["version"], quote=True) in header
    assert links["version"] == f"{mlflow_server}/#/models/{name}/versions/{version}"
    assert links["prefect_run"] == f"{prefect_server.removesuffix('/api')}/runs/flow-run/{run_of}"
    assert html.escape(links["prefect_run"], quote=True) in header
    assert "file://" not in body[: body.index("</header>")]
    # the other page of the report has its own header
    quality = links["download"].replace("drift.html", "quality.html")
    assert HEADER_ID in httpx.get(quality, timeout=60).text
    # a page added later (attribution.html) is stamped, and the pages stamped before list it:
    # their header is replaced, not doubled
    (saved.folder / "attribution.html").write_text("<html><body><p>a</p></body></html>")
    stamp_headers(saved)
    local = (saved.folder / "drift.html").read_text()
    assert local.count(f'id="{HEADER_ID}"') == 1
    assert "Other pages of this report: attribution.html, quality.html" in local
    assert f'id="{HEADER_ID}"' in (saved.folder / "attribution.html").read_text()
    assert "created 20" in local
    assert "UTC</div>" in local

    # the version tag and the flow-run artifact link to the same HTTP page
    tags = client.get_model_version(name, str(version)).tags
    assert tags[TAG_DRIFT_REPORT] == links["report"]
    markdown = _markdown(result, None)
    assert f"]({links['report']})" in markdown
    assert "file://" not in markdown

    # the CLI (`driftloop drift show`, `drift open` with a stand-in browser) and the timeline
    # print the same address, and it answers over HTTP
    from driftloop.cli import main
    from driftloop.embedded.demo.timeline import links as timeline_links

    capsys.readouterr()
    main(["drift", "show", saved.id])
    shown = capsys.readouterr().out
    assert f"url      {links['report']}" in shown
    assert f"download {links['download']}" in shown
    browsed: list[str] = []
    monkeypatch.setattr("webbrowser.open", lambda url: browsed.append(url) or True)
    main(["drift", "open", saved.id])
    assert links["report"] in capsys.readouterr().out.splitlines()
    assert browsed == [links["report"]]  # the browser gets the HTTP page, not a file path
    assert timeline_links(settings)["latest drift report"] == links["report"]
    assert httpx.get(links["report"].split("#", 1)[0], timeout=30).status_code == 200

    # the drift summary: the count and the list agree everywhere it is shown
    drifted = report.summary.drifted_columns
    assert len(drifted) > 5  # more than a short list would show
    latest = json.loads(tags[TAG_DRIFT_LATEST])
    assert latest["drifted"] == drifted
    text = drifted_text(report.summary)
    assert text.startswith(f"{len(drifted)} of {len(report.summary.columns)} features drifted: ")
    assert text.split(": ", 1)[1].split(", ") == drifted
    assert text in markdown
    assert latest["drifted_text"] == text


def test_public_url_is_what_links_use(
    mlflow_server: str, make_settings: Callable[..., Settings]
) -> None:
    """In a cluster, flow runs reach MLflow at a service address a browser cannot: links use
    ``mlflow.public_url``."""
    from driftloop.registry.links import artifact_links, version_url

    settings = make_settings(
        mlflow_uri=mlflow_server, mlflow={"public_url": "https://mlflow.example.test/"}
    )
    links = artifact_links("abc123", "monitoring/r1/drift.html", settings, experiment_id="7")
    assert links.view == (
        "https://mlflow.example.test/#/experiments/7/runs/abc123/artifactPath/"
        "monitoring/r1/drift.html"
    )
    assert links.download == (
        "https://mlflow.example.test/get-artifact?path=monitoring%2Fr1%2Fdrift.html&run_uuid=abc123"
    )
    assert version_url("4", settings) == (
        f"https://mlflow.example.test/#/models/{settings.mlflow.registered_model}/versions/4"
    )
