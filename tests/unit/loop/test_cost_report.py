"""driftloop.loop.cost_report and ``driftloop cost``: retrain loops from the ledger and serving
cost from /metrics text, priced with settings.cost; an unreachable source is a note."""

from __future__ import annotations

import json
from typing import Any

import pytest

from driftloop.cli import main
from driftloop.cost import Usage
from driftloop.loop.cost_report import build_cost_report, parse_serving_cost, record_loop_cost
from driftloop.loop.ledger import claim_retrain, finish_retrain
from serving.metrics import ServingMetrics


def _offline(make_settings: Any, **cost: Any) -> Any:
    # MLflow and serving on a port nothing listens on: those sections become notes
    return make_settings(
        mlflow={"tracking_uri": "http://127.0.0.1:9", "request_timeout_s": 1},
        cost={"cpu_hour": 0.36, "gpu_hour": 3.6, "currency": "EUR", **cost},
        serving={"port": 9},
    )


def test_parse_serving_cost_reads_what_serving_exports() -> None:
    metrics = ServingMetrics()
    for version in ("3", "3", "4"):
        metrics.observe(version, "champion", rows=200, seconds=0.01, error=False)
    parsed = parse_serving_cost(metrics.render().decode())
    assert set(parsed) == {"3", "4"}
    assert parsed["3"][1] == 200.0  # the first request is not counted
    assert parsed["4"][1] == 200.0
    assert all(cpu >= 0 for cpu, _ in parsed.values())


def test_a_loop_without_a_run_is_priced_for_the_ledger(make_settings: Any) -> None:
    settings = _offline(make_settings)
    record = record_loop_cost({}, Usage(cpu_seconds=100.0, wall_seconds=50.0), settings)
    assert record["cpu_seconds"] == 100.0
    assert record["money"] == pytest.approx(100 / 3600 * 0.36)
    assert record["currency"] == "EUR"


def test_cost_cli_prices_the_retrain_loops_of_the_ledger(
    make_settings: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = _offline(make_settings)
    record, guard = claim_retrain("2013-01", "2013-03", settings, reason="drift")
    assert guard.allowed
    spent = record_loop_cost({}, Usage(cpu_seconds=7200.0, wall_seconds=3600.0), settings)
    finish_retrain(record, {"version": "5", "cost": spent}, settings)

    report = build_cost_report(settings)
    assert [(loop.version, loop.cpu_seconds) for loop in report.loops] == [("5", 7200.0)]
    assert report.loops[0].money == pytest.approx(0.72)  # 2 CPU hours at 0.36 EUR
    assert report.training == []
    assert any("training runs unreadable" in n for n in report.notes)
    assert any(
        "serving metrics at http://127.0.0.1:9/metrics unreadable" in n for n in report.notes
    )

    main(["cost", "--json"])
    printed = json.loads(capsys.readouterr().out)
    assert printed["currency"] == "EUR"
    assert printed["loops"][0]["money"] == pytest.approx(0.72)

    main(["cost"])
    out = capsys.readouterr()
    assert "0.36 EUR per CPU hour" in out.out
    assert "2013-01..2013-03" in out.out
    assert "0.72 EUR" in out.out
    assert "note: training runs unreadable" in out.err
