"""The loop's webhook notifications on a real Prefect server: with
``monitoring.notify_webhook_url`` set, a Custom Webhook block (the URL in its secrets) and
three automations (drift, failed retrain, rollback) exist, declared idempotently; a drift event
makes the server post the reason to the webhook (a real HTTP receiver on 127.0.0.1); unset,
there is no automation and no block."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest
from polling import wait_for

from driftloop.loop.automations import prefect_client
from driftloop.loop.events import DRIFT_EVENT
from driftloop.loop.notifications import (
    RETRAIN_FLOW,
    ROLLBACK_EVENT,
    block_name,
    emit_rollback,
    ensure_notifications,
    read_notifications,
)
from driftloop.loop.trigger import emit_event

pytestmark = pytest.mark.integration


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A webhook receiver on 127.0.0.1: (url, the JSON bodies posted to it)."""
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", 0))
            received.append(json.loads(self.rfile.read(length) or b"{}"))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    finally:
        server.shutdown()
        server.server_close()


def test_notifications_exist_with_a_webhook_fire_on_drift_and_go_when_unset(
    make_settings: Any, prefect_server: str, webhook: tuple[str, list[dict[str, Any]]]
) -> None:
    from prefect import flow
    from prefect.exceptions import ObjectNotFound

    url, received = webhook
    model = f"notify-{uuid.uuid4().hex[:6]}"
    settings = make_settings(
        prefect_url=prefect_server,
        mlflow={"registered_model": model},
        monitoring={"notify_webhook_url": url},
    )
    unset = make_settings(prefect_url=prefect_server, mlflow={"registered_model": model})
    with prefect_client(settings) as client:
        try:
            done = ensure_notifications(settings, client)
            assert sorted(done) == sorted(
                f"created driftloop: notify {model} {kind}"
                for kind in ("drift", "failed retrain", "rollback")
            )
            assert ensure_notifications(settings, client) == []  # idempotent
            found = read_notifications(settings, client)
            assert set(found) == {"drift", "failed retrain", "rollback"}
            assert found["drift"].trigger.expect == {DRIFT_EVENT}
            assert found["rollback"].trigger.expect == {ROLLBACK_EVENT}
            assert found["failed retrain"].trigger.match_related
            block = client.read_block_document_by_name(
                block_name(settings), "custom-webhook", include_secrets=False
            )
            block_ids = {str(a.actions[0].block_document_id) for a in found.values()}
            assert block_ids == {str(block.id)}
            shown = json.dumps(block.data, default=str)  # what the UI and API show
            assert "127.0.0.1" not in shown  # the URL is a masked secret

            emit_event(
                DRIFT_EVENT,
                model,
                {"reason": "estimated AUC 0.61 < KPI 0.66", "model_version": "3"},
                settings,
            )
            posted = wait_for(lambda: list(received), 60, "the drift notification")
            assert posted[0]["subject"] == f"driftloop: drift on {model}"
            assert "estimated AUC 0.61 < KPI 0.66" in posted[0]["text"]
            assert emit_rollback("7", "error rate 4 % > guard 2 %", settings)
            wait_for(lambda: len(received) > 1, 60, "the rollback notification")
            assert received[1]["subject"] == f"driftloop: canary of {model} rolled back"
            assert received[1]["body"] == "version 7: error rate 4 % > guard 2 %"

            @flow(name=RETRAIN_FLOW)
            def retrain() -> None:
                raise RuntimeError("planted failure")

            state = retrain(return_state=True)
            assert state.is_failed()
            wait_for(lambda: len(received) > 2, 60, "the failed-retrain notification")
            assert received[2]["subject"] == f"driftloop: retrain of {model} failed"
            assert "prefect.flow-run.Failed" in received[2]["body"]
        finally:
            removed = ensure_notifications(unset, client)
        assert len([line for line in removed if line.startswith("removed driftloop")]) == 3
        assert read_notifications(unset, client) == {}
        with pytest.raises(ObjectNotFound):
            client.read_block_document_by_name(block_name(unset), "custom-webhook")
        assert ensure_notifications(unset, client) == []
