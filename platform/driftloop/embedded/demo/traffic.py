"""The demo's client: a month's rows through the inference API, then their labels as feedback;
and the months' rows themselves, one parquet file per month.

With auth on, inference goes with a predict token and labels with a feedback token (an admin
token holds both): a predict token may not post labels. Only tokens the settings hold in plain
text can be sent (a ``sha256:`` digest cannot)."""

from __future__ import annotations

import logging
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pandas as pd

from driftloop.schema import EVENT_TIMESTAMP, LABEL, MODEL_INPUT_COLUMNS
from driftloop.settings import BearerToken, Settings
from serving import codec

logger = logging.getLogger(__name__)


def month_frame_path(folder: Path, month: str) -> Path:
    return folder / f"{month}.parquet"


def write_month_frames(folder: Path, months: list[str], settings: Settings) -> None:
    """The point-in-time feature rows of each of ``months``' flights (Feast's offline store, as
    for training) into ``folder``: the replay's traffic. Built once by the demo's first steps,
    in their child process: a Feast retrieval leaves ~450 MB held in the process that runs it."""
    from driftloop.features import build_training_frame  # lazy: Feast, only in the child

    folder.mkdir(parents=True, exist_ok=True)
    for month in months:
        build_training_frame([month], settings).to_parquet(month_frame_path(folder, month))


def read_month_frame(folder: Path, month: str) -> pd.DataFrame:
    """All of ``month``'s rows as :func:`write_month_frames` wrote them."""
    return pd.read_parquet(month_frame_path(folder, month))


def _body(chunk: Any, request_id: str) -> dict[str, Any]:
    """An OIP v2 body with complete feature rows (and the scheduled departure) of ``chunk``."""
    return codec.request_body(chunk[[*MODEL_INPUT_COLUMNS, EVENT_TIMESTAMP]], request_id)


def _bearer(*scopes: list[BearerToken]) -> dict[str, str]:
    """An Authorization header with the first plain-text token of ``scopes`` (none: no header,
    as with auth off)."""
    for tokens in scopes:
        for token in tokens:
            value = token.get_secret_value()
            if not value.startswith("sha256:"):
                return {"Authorization": f"Bearer {value}"}
    return {}


class Traffic:
    """Sends a month's rows to the inference API and posts their labels as feedback."""

    def __init__(self, settings: Settings, rows_per_request: int) -> None:
        s = settings.serving
        self.base = f"http://{s.host}:{s.port}"
        self.url = f"{self.base}/v2/models/{settings.mlflow.registered_model}"
        self.client = httpx.Client(timeout=30.0)
        auth = s.auth
        self.predict_auth = _bearer(auth.predict_tokens, auth.admin_tokens)
        self.feedback_auth = _bearer(auth.feedback_tokens, auth.admin_tokens)
        self.size = rows_per_request
        self.sent = 0
        self.errors = 0

    def close(self) -> None:
        self.client.close()

    def health(self) -> dict[str, Any]:
        """Serving's readiness body: champion, challenger, canary weight and mode it routes by."""
        try:
            body: dict[str, Any] = self.client.get(f"{self.base}/v2/health/ready").json()
            return body
        except (httpx.HTTPError, ValueError):
            return {}

    def await_champion(self, version: str | None, timeout_s: float = 30.0) -> bool:
        """Wait until serving routes to ``version`` as its champion; False when it still did
        not after ``timeout_s``. Serving takes up a promotion or a rollback at its next
        reconcile (``serving.reconcile_interval_s``) and the retrain run ends within that time:
        a month's traffic sent at once went to the old champion, and the monitor, which judges
        the registry's champion, found none of its rows ("insufficient_data", 1 demo in 4)."""
        deadline = time.monotonic() + timeout_s
        while version is not None and str(self.health().get("champion")) != str(version):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.2)
        return True

    def send(self, frame: Any, tag: str) -> tuple[int, int]:
        """All rows of ``frame`` in batches, then the labels; returns (rows sent, errors)."""
        sent = errors = 0
        for start in range(0, len(frame), self.size):
            chunk = frame.iloc[start : start + self.size]
            rid = f"demo-{tag}-{start // self.size}-{uuid.uuid4().hex[:6]}"
            ok = self.send_chunk(chunk, rid)
            sent += len(chunk) if ok else 0
            errors += 0 if ok else 1
        return sent, errors

    def send_chunk(self, chunk: Any, request_id: str) -> bool:
        try:
            response = self.client.post(
                f"{self.url}/infer", json=_body(chunk, request_id), headers=self.predict_auth
            )
            if response.status_code != 200:
                logger.warning(
                    "infer %s: HTTP %s %s", request_id, response.status_code, response.text[:200]
                )
                self.errors += 1
                return False
            labels = [int(v) for v in chunk[LABEL]]
            fb = self.client.post(
                f"{self.url}/feedback",
                json={"request_id": request_id, "labels": labels},
                headers=self.feedback_auth,
            )
            if fb.status_code != 200:
                logger.warning("feedback %s: HTTP %s", request_id, fb.status_code)
        except httpx.HTTPError as exc:
            logger.warning("request %s failed: %s", request_id, exc)
            self.errors += 1
            return False
        self.sent += len(chunk)
        return True
