"""What the platform spent, priced (``driftloop cost``): per training run (its MLflow ``cost.*``
metrics), per retrain loop (the ledger's outcomes) and per model version served (the serving
replicas' ``/metrics``), turned into money with ``settings.cost``'s prices.

The retrain flow records a loop's cost with :func:`record_loop_cost`: the CPU seconds of the
whole loop (ingest, features, training, evaluation, rollout: its subflows run in its process,
plus the child processes it waited for) go into the ledger's outcome, onto the training run
(``cost.loop_cpu_seconds``, ``cost.loop_wall_seconds``) and onto the new version as a tag.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from driftloop import cost
from driftloop.loop.ledger import list_retrains
from driftloop.registry import client as registry
from driftloop.registry.inventory import runs_with_metric
from driftloop.settings import Settings, get_settings

logger = logging.getLogger(__name__)

#: Version tag of the CPU seconds of the retrain loop that produced the version.
TAG_LOOP_CPU = "driftloop.cost.loop_cpu_seconds"
SERVING_CPU = "driftloop_serving_cpu_seconds_total"
SERVING_ROWS = "driftloop_serving_cost_predictions_total"


def record_loop_cost(
    outcome: dict[str, Any], usage: cost.Usage, settings: Settings | None = None
) -> dict[str, Any]:
    """The loop's cost for its ledger outcome; logged on its training run and version when it
    made one (best effort: a failure is logged, never raised, the ledger still gets it)."""
    settings = settings or get_settings()
    record: dict[str, Any] = usage.to_dict()
    run_id, version = outcome.get("run_id"), outcome.get("version")
    if run_id:
        try:
            registry.log_run_metrics(
                run_id,
                {
                    cost.LOOP_CPU_SECONDS: usage.cpu_seconds,
                    cost.LOOP_WALL_SECONDS: usage.wall_seconds,
                },
                0,
                settings,
            )
            _, _, metrics = registry.get_run_data(run_id, settings)
            record["gpu_seconds"] = round(float(metrics.get(cost.GPU_SECONDS, 0.0)), 6)
            if version:
                registry.set_version_tags(
                    str(version), {TAG_LOOP_CPU: f"{usage.cpu_seconds:.3f}"}, settings
                )
        except Exception as exc:  # the ledger keeps the numbers; MLflow is the second home
            logger.warning("could not log the retrain loop's cost on run %s: %s", run_id, exc)
    record["money"] = round(
        cost.money(record["cpu_seconds"], record["gpu_seconds"], settings.cost), 8
    )
    record["currency"] = settings.cost.currency
    return record


@dataclass
class TrainingCost:
    run_id: str
    run_name: str
    started: str
    version: str | None
    device: str | None
    cpu_seconds: float
    gpu_seconds: float
    predict_cpu_s_per_1k: float | None
    money: float


@dataclass
class LoopCost:
    id: str
    window: str
    status: str
    requested_at: str
    version: str | None
    cpu_seconds: float
    wall_seconds: float
    gpu_seconds: float
    money: float


@dataclass
class ServingCostRow:
    model_version: str
    predictions: float
    cpu_seconds: float
    cpu_s_per_1k: float | None
    money_per_1k: float | None
    money_per_1m: float | None


@dataclass
class CostReport:
    currency: str
    cpu_hour: float
    gpu_hour: float
    training: list[TrainingCost] = field(default_factory=list)
    loops: list[LoopCost] = field(default_factory=list)
    serving: list[ServingCostRow] = field(default_factory=list)
    serving_sources: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _training(settings: Settings, limit: int) -> list[TrainingCost]:
    out = []
    for run in runs_with_metric(cost.CPU_SECONDS, settings, limit):
        cpu = run.metrics.get(cost.CPU_SECONDS, 0.0)
        gpu = run.metrics.get(cost.GPU_SECONDS, 0.0)
        out.append(
            TrainingCost(
                run_id=run.run_id,
                run_name=run.run_name,
                started=datetime.fromtimestamp(run.started_ms / 1000, UTC).isoformat(
                    timespec="seconds"
                ),
                version=run.tags.get("driftloop.model_version"),
                device=run.tags.get("driftloop.device"),
                cpu_seconds=cpu,
                gpu_seconds=gpu,
                predict_cpu_s_per_1k=run.metrics.get(cost.PREDICT_CPU_PER_1K),
                money=cost.money(cpu, gpu, settings.cost),
            )
        )
    return out


def _loops(settings: Settings, limit: int) -> list[LoopCost]:
    out = []
    for record in list_retrains(settings, settings.mlflow.registered_model):
        spent = record.outcome.get("cost")
        if not isinstance(spent, dict):
            continue  # skipped by a guard, or from before loops were costed
        cpu = float(spent.get("cpu_seconds", 0.0))
        gpu = float(spent.get("gpu_seconds", 0.0))
        version = record.outcome.get("version")
        out.append(
            LoopCost(
                id=record.id,
                window=record.window,
                status=record.status,
                requested_at=record.requested_at,
                version=str(version) if version is not None else None,
                cpu_seconds=cpu,
                wall_seconds=float(spent.get("wall_seconds", 0.0)),
                gpu_seconds=gpu,
                money=cost.money(cpu, gpu, settings.cost),
            )
        )
    return list(reversed(out))[:limit]


def serving_metrics_urls(settings: Settings) -> list[str]:
    """Where ``driftloop cost`` reads serving's metrics: ``cost.serving_metrics_urls``, else
    the local inference API."""
    if settings.cost.serving_metrics_urls:
        return list(settings.cost.serving_metrics_urls)
    host = settings.serving.host
    if host in ("0.0.0.0", "::", ""):  # bound to every address: ask the loopback one
        host = "127.0.0.1"
    return [f"http://{host}:{settings.serving.port}/metrics"]


def parse_serving_cost(text: str) -> dict[str, tuple[float, float]]:
    """``{version: (cpu seconds, predictions)}`` from one replica's ``/metrics`` text."""
    out: dict[str, list[float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            slot = {SERVING_CPU: 0, SERVING_ROWS: 1}.get(sample.name)
            if slot is not None:
                version = sample.labels.get("model_version", "?")
                out.setdefault(version, [0.0, 0.0])[slot] += sample.value
    return {version: (cpu, rows) for version, (cpu, rows) in out.items()}


def _serving(settings: Settings, urls: list[str], notes: list[str]) -> list[ServingCostRow]:
    totals: dict[str, list[float]] = {}
    for url in urls:
        try:
            response = httpx.get(url, timeout=5.0)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            notes.append(f"serving metrics at {url} unreadable ({type(exc).__name__}: {exc})")
            continue
        for version, (cpu, rows) in parse_serving_cost(response.text).items():
            slot = totals.setdefault(version, [0.0, 0.0])
            slot[0] += cpu
            slot[1] += rows
    out = []
    for version, (cpu, rows) in sorted(totals.items(), key=lambda kv: kv[0]):
        ratio = cost.per_1k(cpu, rows)
        money_1k = cost.money(ratio, 0.0, settings.cost) if ratio is not None else None
        out.append(
            ServingCostRow(
                model_version=version,
                predictions=rows,
                cpu_seconds=cpu,
                cpu_s_per_1k=ratio,
                money_per_1k=money_1k,
                money_per_1m=money_1k * 1000 if money_1k is not None else None,
            )
        )
    return out


def build_cost_report(
    settings: Settings | None = None, limit: int = 20, serving_urls: list[str] | None = None
) -> CostReport:
    """The cost report; a source that cannot be read becomes a note, not an error."""
    settings = settings or get_settings()
    report = CostReport(
        currency=settings.cost.currency,
        cpu_hour=settings.cost.cpu_hour,
        gpu_hour=settings.cost.gpu_hour,
    )
    try:
        report.training = _training(settings, limit)
    except Exception as exc:  # MLflow down: the other sections still answer
        report.notes.append(f"training runs unreadable: {exc}")
    report.loops = _loops(settings, limit)
    urls = serving_urls or serving_metrics_urls(settings)
    report.serving_sources = urls
    report.serving = _serving(settings, urls, report.notes)
    return report
