"""The demo's environment: demo-sized settings for every process it starts, the embedded
platform with a fresh worker, and the inference API as a background service."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable

from prefect.context import refresh_global_settings_context

from driftloop.embedded.deploy import deploy_all
from driftloop.embedded.platform import start_all
from driftloop.embedded.services import (
    Service,
    service_env,
    start_service,
    stop_service,
    worker_service,
)
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
    # One retrain per replay, however fast the machine: the replay reaches the next months
    # within a minute or two of the first retrain, and a cooldown shorter than that made the
    # decisions depend on speed (a 1 min cooldown retrained again at 2013-07 on a loaded
    # machine and suppressed it on a quiet one). Later alarms show as "suppressed (cooldown)".
    "DRIFTLOOP_MONITORING__RETRAIN_COOLDOWN_MINUTES": "30",
    "DRIFTLOOP_MONITORING__DAILY_RETRAIN_BUDGET": "20",
    "DRIFTLOOP_MONITORING__SCHEDULE_MINUTES": "10",
    "DRIFTLOOP_MONITORING__WINDOW_MINUTES": "10",
    "DRIFTLOOP_SERVING__RECONCILE_INTERVAL_S": "2",
    "DRIFTLOOP_SERVING__CAPTURE_FLUSH_S": "0.5",
    # The worker asks for scheduled runs every 2 s (default 10): the automation's retrain starts
    # sooner; nothing it decides depends on it.
    "PREFECT_WORKER_QUERY_SECONDS": "2",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    # MLflow prints "View run ... at" and "View experiment at" each time a run ends (three times
    # per training: the run is resumed to log the model and the evaluation), and asks the server
    # for the run to do it; the demo prints its own links once, in its summary.
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
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


class PlatformStart:
    """The deployments, the automation and the worker, registered and started in a thread while
    the demo ingests, builds features and trains (none of which needs them): the
    deploy is mostly a ``prefect deploy`` subprocess, so both go at once. :meth:`wait` returns
    once they are in place (re-raising what failed)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="demo-deploy", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            deploy_all(self.settings)
            if self.settings.prefect.start_worker:
                start_service(worker_service(self.settings), self.settings)
        except BaseException as exc:  # handed to the main thread by wait()
            self.error = exc

    def wait(self) -> None:
        self.thread.join()
        if self.error is not None:
            raise self.error


def start_platform(settings: Settings, echo: Echo) -> PlatformStart:
    """MLflow + Prefect now; the deployments, automation and a worker that has the demo settings
    in the background (:meth:`PlatformStart.wait` before the loop needs them)."""
    # A worker left by an earlier `driftloop up` may have other settings: start a fresh one.
    stop_service(worker_service(settings), settings)
    start_all(settings, deploy=False, progress=lambda msg: echo(f"  {msg}"), worker=False)
    return PlatformStart(settings)


def finish_platform(started: PlatformStart) -> None:
    """Wait until the deployments, the automation and the worker are in place."""
    started.wait()


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
