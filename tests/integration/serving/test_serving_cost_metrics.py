"""Serving's cost per 1,000 predictions on /metrics of a real ``python -m serving`` after real
requests (champion and challenger both serving), and ``driftloop cost`` pricing it."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from driftloop.cli import main
from serving.examples import features_request

pytestmark = pytest.mark.integration


def _by_version(text: str, name: str) -> dict[str, float]:
    return {
        s.labels["model_version"]: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    }


def test_metrics_export_cpu_seconds_per_1000_predictions_per_version(
    canary: Callable[..., Any], capsys: pytest.CaptureFixture[str]
) -> None:
    c = canary("better", weight=50)
    rows = 0
    with httpx.Client(timeout=30) as client:
        for i in range(200):
            body = orjson.dumps(features_request(5, request_id=f"c{i}"))
            r = client.post(c.infer, content=body, headers={"Content-Type": "application/json"})
            assert r.status_code == 200, r.text
            rows += 5
        text = client.get(f"{c.url}/metrics").text

    predictions = _by_version(text, "driftloop_serving_cost_predictions_total")
    cpu = _by_version(text, "driftloop_serving_cpu_seconds_total")
    ratio = _by_version(text, "driftloop_serving_cpu_seconds_per_1k_predictions")
    assert set(ratio) == {c.v1, c.v2}  # both versions served and are costed
    assert sum(predictions.values()) == rows - 5  # the first request is start-up, not counted
    for version in (c.v1, c.v2):
        assert cpu[version] > 0
        assert ratio[version] == pytest.approx(cpu[version] / predictions[version] * 1000)

    main(["cost", "--json", "--serving-url", f"{c.url}/metrics"])
    report = json.loads(capsys.readouterr().out)
    priced = {row["model_version"]: row for row in report["serving"]}
    assert set(priced) == {c.v1, c.v2}
    price = c.settings.cost.cpu_hour
    for row in priced.values():
        assert row["predictions"] > 0
        assert row["money_per_1k"] == pytest.approx(row["cpu_s_per_1k"] / 3600 * price)
        assert row["money_per_1m"] == pytest.approx(row["money_per_1k"] * 1000)
    main(["cost", "--serving-url", f"{c.url}/metrics"])
    assert f"{report['currency']}" in capsys.readouterr().out
