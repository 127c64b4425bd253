"""Prometheus metrics of the inference service (one registry per app, so tests stay isolated).

* ``driftloop_inference_requests_total{model_version, variant, traffic}``
* ``driftloop_inference_errors_total{model_version, variant, traffic}`` (a challenger failure that
  the champion answered counts here for the challenger)
* ``driftloop_inference_rows_total{model_version, variant, traffic}``
* ``driftloop_inference_latency_seconds{model_version, variant, traffic}`` (histogram)

  ``traffic`` is ``live`` or ``synthetic`` (load tests and probes marked by the caller, which the
  monitor and the canary leave out): two values, whatever the caller's mark says.
* ``driftloop_rejected_requests_total{status}`` (4xx answers)
* ``driftloop_feedback_rejected_total{reason}`` (label calls refused: ``unauthenticated``,
  ``forbidden``, ``invalid``, ``too_large``, ``unknown_prediction``)
* ``driftloop_feedback_conflicts_total`` (labels for predictions this replica had seen labelled
  differently: stored as conflicts, the first label wins)
* ``driftloop_serving_info{champion, challenger, weight, mode}`` and ``driftloop_registry_up``
* ``driftloop_canary_weight`` (the challenger's traffic share in percent, 0 without one)
* ``driftloop_rate_limited_total`` (requests answered 429 by the per-caller rate limit)
* ``driftloop_serving_cpu_seconds_per_1k_predictions{model_version}`` and its counters
  (:mod:`serving.cost`: computed at scrape time, nothing per request)
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from serving.cost import ServingCost

__all__ = ["CONTENT_TYPE_LATEST", "ServingMetrics"]

#: The two values of the ``traffic`` label.
LIVE, SYNTHETIC = "live", "synthetic"
#: The ``variant`` label of a challenger's shadow copy (the others: champion, challenger).
SHADOW = "shadow"
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0)


class ServingMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        labels = ["model_version", "variant", "traffic"]
        self.requests = Counter(
            "driftloop_inference_requests", "Inference requests.", labels, registry=self.registry
        )
        self.errors = Counter(
            "driftloop_inference_errors", "Failed predictions.", labels, registry=self.registry
        )
        self.rows = Counter(
            "driftloop_inference_rows", "Predicted rows.", labels, registry=self.registry
        )
        self.latency = Histogram(
            "driftloop_inference_latency_seconds",
            "Latency of an inference request in the server.",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.rejected = Counter(
            "driftloop_rejected_requests",
            "Requests answered 4xx.",
            ["status"],
            registry=self.registry,
        )
        self.feedback_rejected = Counter(
            "driftloop_feedback_rejected",
            "Feedback calls refused, by reason (nothing of the call is stored).",
            ["reason"],
            registry=self.registry,
        )
        self.feedback_conflicts = Counter(
            "driftloop_feedback_conflicts",
            "Labels for predictions already labelled differently (the first label wins).",
            registry=self.registry,
        )
        self.registry_up = Gauge(
            "driftloop_registry_up",
            "1 when the last registry read worked.",
            registry=self.registry,
        )
        self.info = Gauge(
            "driftloop_serving_info",
            "What serves (value 1).",
            ["champion", "challenger", "weight", "mode"],
            registry=self.registry,
        )
        self.canary_weight = Gauge(
            "driftloop_canary_weight",
            "The challenger's traffic share in percent (0 without a challenger).",
            registry=self.registry,
        )
        self.rate_limited = Counter(
            "driftloop_rate_limited",
            "Requests answered 429 by the per-caller rate limit (serving.ratelimit).",
            registry=self.registry,
        )
        self.shadow_dropped = Counter(
            "driftloop_shadow_dropped",
            "Shadow copies not scored because serving.shadow_max_pending copies were pending "
            "(the challenger's shadow evidence is then a sample of the traffic).",
            registry=self.registry,
        )
        self._children: dict[tuple[str, str, str], tuple[Any, Any, Any, Any]] = {}
        self.cost = ServingCost(self.rows, self.latency)
        self.registry.register(self.cost)

    def _child(self, version: str, variant: str, traffic: str) -> tuple[Any, Any, Any, Any]:
        key = (version, variant, traffic)
        found = self._children.get(key)
        if found is None:
            found = (
                self.requests.labels(version, variant, traffic),
                self.errors.labels(version, variant, traffic),
                self.rows.labels(version, variant, traffic),
                self.latency.labels(version, variant, traffic),
            )
            self._children[key] = found
        return found

    def observe(
        self,
        version: str,
        variant: str,
        rows: int,
        seconds: float,
        error: bool,
        traffic: str = LIVE,
    ) -> None:
        """Count one request; ``traffic``: :data:`LIVE` or :data:`SYNTHETIC` only."""
        req, err, row, lat = self._child(version, variant, traffic)
        req.inc()
        row.inc(rows)
        lat.observe(seconds)
        if error:
            err.inc()
        if not self.cost.started:  # the first prediction: serving's cost counts from here
            self.cost.start()

    def reject_feedback(self, reason: str) -> None:
        self.feedback_rejected.labels(reason).inc()

    def count_feedback_conflicts(self, n: int) -> None:
        if n:
            self.feedback_conflicts.inc(n)

    def set_state(self, health: dict[str, Any]) -> None:
        self.registry_up.set(0 if health.get("last_error") else 1)
        self.info.clear()
        weight = health.get("canary_weight")
        has_challenger = health.get("challenger") is not None
        self.canary_weight.set(float(weight) if has_challenger and weight is not None else 0.0)
        self.info.labels(
            str(health.get("champion")),
            str(health.get("challenger")),
            str(health.get("canary_weight")),
            str(health.get("mode")),
        ).set(1)

    def render(self) -> bytes:
        return generate_latest(self.registry)
