"""The demo sends a month's traffic only once serving routes to the registry's champion: after a
promotion, serving takes the new champion up at its next reconcile, and a month sent before that
went to the old one (the monitor then judged the new champion on none of its rows). A real HTTP
server on 127.0.0.1 stands in for serving's readiness endpoint."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from driftloop.embedded.demo.traffic import Traffic
from driftloop.settings import Settings


class Ready:
    """Answers /v2/health/ready with champion "1" for the first ``switch_after`` calls, then
    "2" (a promotion serving takes up late)."""

    def __init__(self, switch_after: int) -> None:
        self.switch_after = switch_after
        self.calls = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.calls += 1
                champion = "1" if owner.calls <= owner.switch_after else "2"
                body = json.dumps({"ready": True, "champion": champion, "challenger": None})
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]


@pytest.fixture
def ready() -> Iterator[Ready]:
    r = Ready(switch_after=3)
    thread = threading.Thread(target=r.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield r
    finally:
        r.server.shutdown()
        r.server.server_close()


def _traffic(ready: Ready, tmp_path: Path) -> Traffic:
    settings = Settings(state_dir=tmp_path, serving={"host": "127.0.0.1", "port": ready.port})
    return Traffic(settings, rows_per_request=10)


def test_the_next_month_waits_until_serving_routes_to_the_new_champion(
    ready: Ready, tmp_path: Path
) -> None:
    traffic = _traffic(ready, tmp_path)
    try:
        assert traffic.await_champion("2", timeout_s=10)
        assert ready.calls == 4  # three answers still named v1
        assert traffic.health()["champion"] == "2"
    finally:
        traffic.close()


def test_a_champion_serving_never_takes_up_is_reported_after_the_timeout(
    ready: Ready, tmp_path: Path
) -> None:
    traffic = _traffic(ready, tmp_path)
    try:
        assert not traffic.await_champion("3", timeout_s=0.5)
        assert traffic.await_champion(None, timeout_s=0.0)  # no champion: nothing to wait for
    finally:
        traffic.close()
