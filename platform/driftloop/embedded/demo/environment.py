"""The demo's environment: demo-sized settings for every process it starts, the embedded
platform with a fresh worker, and the inference API as a background service."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from prefect.context import refresh_global_settings_context

from driftloop.embedded.platform import start_all
from driftloop.embedded.services import Service, service_env, stop_service, worker_service
from driftloop.settings import Settings, get_settings, use_settings
from serving.process import serving_env

Echo = Callable[[str], None]

#: Demo-sized settings (applied only where the environment does not set them already).
DEMO_ENV = {
    "DRIFTLOOP_TRAINING__EPOCHS": "3",
    "DRIFTLOOP_TRAINING__PATIENCE": "1",
    # The challenger is judged in shadow mode on every request: it scores a copy, the champion
    # answers, so log loss and calibration are compared per row (paired: ~10x less noise than
    # two disjoint halves of a month). The evidence budget is fixed: a look every 200 routed
    # requests, at most 2,000 (10 labelled rows each: no flight repeats), on requests at least
    # 2 s old so their labels and shadow copies are in; the same seeded traffic reaches the
    # same decision. (0 errors in n requests shows "at most +1 point" only from n ~ 1,600.)
    "DRIFTLOOP_SERVING__MODE": "shadow",
    "DRIFTLOOP_ROLLOUT__CANARY_WEIGHT": "100",
    "DRIFTLOOP_ROLLOUT__LOOK_EVERY": "200",
    "DRIFTLOOP_ROLLOUT__MAX_REQUESTS": "2000",
    "DRIFTLOOP_ROLLOUT__LABEL_WAIT_S": "2",
    "DRIFTLOOP_ROLLOUT__MAX_MINUTES": "6",
    "DRIFTLOOP_ROLLOUT__POLL_S": "1",
    "DRIFTLOOP_ROLLOUT__MIN_LABELED_ROWS": "200",
    "DRIFTLOOP_MONITORING__RETRAIN_COOLDOWN_MINUTES": "1",
    "DRIFTLOOP_MONITORING__DAILY_RETRAIN_BUDGET": "20",
    "DRIFTLOOP_MONITORING__SCHEDULE_MINUTES": "10",
    "DRIFTLOOP_MONITORING__WINDOW_MINUTES": "10",
    "DRIFTLOOP_SERVING__RECONCILE_INTERVAL_S": "2",
    "DRIFTLOOP_SERVING__CAPTURE_FLUSH_S": "0.5",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    # `prefect work-pool ls` is parsed by driftloop.embedded.deploy: a wide table keeps names whole.
    "COLUMNS": "250",
}


def apply_demo_environment() -> Settings:
    """Set the demo-sized defaults in this process's environment and re-read the settings."""
    for key, value in DEMO_ENV.items():
        os.environ.setdefault(key, value)
    use_settings(None)
    settings = get_settings()
    # PREFECT_API_URL, MLFLOW_TRACKING_URI, results; the flows MLflow user and the Prefect API
    # auth string (the in-process flows act as the worker would); serving gets its own user.
    os.environ.update(service_env(settings))
    # Prefect read its settings when it was imported (before the lines above): re-read them, or
    # the demo's in-process flows would start an ephemeral server instead of using the platform's.
    refresh_global_settings_context()
    return settings


def start_platform(settings: Settings, echo: Echo) -> None:
    """MLflow + Prefect (+ deployments, automation) + a worker that has the demo settings."""
    # A worker left by an earlier `driftloop up` may have other settings: start a fresh one.
    stop_service(worker_service(settings), settings)
    start_all(settings, deploy=True, progress=lambda msg: echo(f"  {msg}"))


def serving_service(settings: Settings) -> Service:
    s = settings.serving
    return Service(
        name="serving",
        port=s.port,
        health_url=f"http://{s.host}:{s.port}/v2/health/ready",
        command=[sys.executable, "-m", "serving"],
        env=serving_env(settings),
        port_setting="DRIFTLOOP_SERVING__PORT",
        startup_timeout_s=180.0,
    )
