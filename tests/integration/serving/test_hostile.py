"""Hostile requests against a real ``python -m serving`` (uvicorn on 127.0.0.1, real MLflow,
the real pyfunc fake model): each vector of issue 11 gets its 4xx within the client's timeout,
the server's resident memory (VmRSS of its process, sampled through the whole run) stays under a
bound, the server keeps serving, and every prediction captured before the matrix is still in the
capture afterwards.

The chunked oversized body is sent over a raw socket (``Transfer-Encoding: chunked``, no
Content-Length) so the server can only count it while it streams in; the client stops sending
as soon as the answer arrives.

One caller against the replica: slow uploads (raw sockets that stop sending) get 408 at the
body deadline, a caller's third body in flight gets 429 while another caller is served, idle
connections up to ``max_concurrency`` make uvicorn answer 503 until they close, and labels for a
request id used twice are 409 with nothing stored.
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import orjson
import pytest
from polling import wait_for

from driftloop.data.capture import AMBIGUOUS, read_feedback, read_predictions, served_row_counts
from driftloop.settings import Settings
from serving.examples import features_request, flight_request

pytestmark = pytest.mark.integration

ADMIN_TOKEN, PREDICT_TOKEN, FEEDBACK_TOKEN = "admin-secret", "predict-secret", "feedback-secret"
JSON = {"Content-Type": "application/json"}
PREDICT = {"Authorization": f"Bearer {PREDICT_TOKEN}"} | JSON
FEEDBACK = {"Authorization": f"Bearer {FEEDBACK_TOKEN}"} | JSON
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"} | JSON
#: Small limits of the hostile server, so the test reaches them with a few sockets.
BODY_TIMEOUT_S, BODY_READS, CONCURRENCY = 4.0, 2, 8
#: Growth of the server's resident memory allowed over the whole matrix (MiB). A server that
#: buffered the chunked body whole would pass it alone (the client streams up to 1 GiB).
RSS_GROWTH_MIB = 384
CHUNKED_TOTAL = 2**30
TIMEOUT_S = 30.0  # each answer comes within this (a bound, not a measurement)


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for process {pid}")


@contextmanager
def _rss_peak(pid: int) -> Iterator[list[int]]:
    """Sample the process's VmRSS every 20 ms while the block runs; ``[peak KiB]``."""
    peak = [_rss_kib(pid)]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.02):
            peak[0] = max(peak[0], _rss_kib(pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield peak
    finally:
        done.set()
        sampler.join(5)
        peak[0] = max(peak[0], _rss_kib(pid))


def _chunked_post(url: str, path: str, headers: dict[str, str], total: int) -> tuple[int, int]:
    """POST ``total`` bytes as a chunked JSON string body without Content-Length; stop sending
    when the server answers. Returns (status, bytes sent)."""
    u = httpx.URL(url)
    head = [f"POST {path} HTTP/1.1", f"Host: {u.host}:{u.port}", "Transfer-Encoding: chunked"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    chunk = b"x" * 65536
    frame = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    sent = 0
    answer = b""
    with socket.create_connection((u.host, u.port), timeout=TIMEOUT_S) as sock:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        opening = b'{"inputs": [], "pad": "'
        sock.sendall(f"{len(opening):x}\r\n".encode() + opening + b"\r\n")
        deadline = time.monotonic() + TIMEOUT_S
        while sent < total and time.monotonic() < deadline:
            readable, writable, _ = select.select([sock], [sock], [], 1.0)
            if readable:
                break
            if writable:
                try:
                    sock.sendall(frame)
                except (BrokenPipeError, ConnectionResetError):
                    break
                sent += len(chunk)
        sock.settimeout(TIMEOUT_S)
        while b"\r\n" not in answer:
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                break
            if not data:
                break
            answer += data
    status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0
    return status, sent


def _features(n: int, **change: Any) -> dict[str, Any]:
    body = features_request(n)
    for name, data in change.items():
        next(t for t in body["inputs"] if t["name"] == name)["data"] = data
    return body


def _raw_number(literal: bytes) -> bytes:
    return orjson.dumps(features_request(2)).replace(b"[200.0,500.0]", b"[200.0," + literal + b"]")


def _with_event_ts(value: str) -> dict[str, Any]:
    body = features_request(2)
    body["inputs"].append(
        {"name": "event_timestamp", "shape": [2], "datatype": "BYTES", "data": [value, value]}
    )
    return body


def _departure(value: str) -> dict[str, Any]:
    body = flight_request(2)
    next(t for t in body["inputs"] if t["name"] == "scheduled_departure")["data"][1] = value
    return body


def _many_inputs(n: int, same_name: bool) -> bytes:
    tensor = '{"name": "%s", "shape": [1], "datatype": "FP64", "data": [1.0]}'
    names = ("x" for _ in range(n)) if same_name else (f"n{i}" for i in range(n))
    return ('{"inputs": [' + ",".join(tensor % name for name in names) + "]}").encode()


def _nested(depth: int) -> bytes:
    return b'{"inputs": [{"name": "distance", "shape": [1], "datatype": "FP64", "data": ' + (
        b"[" * depth + b"]" * depth + b"}]}"
    )


#: (vector, path under the model, body, headers, expected status or statuses)
Vector = tuple[str, str, Any, dict[str, str], int | tuple[int, ...]]
#: Too much of something: 400 or 413 are both fair answers
TOO_MUCH = (400, 413)


def _expected(status: int | tuple[int, ...]) -> tuple[int, ...]:
    return status if isinstance(status, tuple) else (status,)


def _matrix(rid: str) -> list[Vector]:
    long = "x" * 100_000
    return [
        ("long id", "infer", features_request(1, request_id=long), PREDICT, 400),
        ("long routing key", "infer", features_request(1, routing_key=long), PREDICT, 400),
        ("object routing key", "infer", features_request(1, routing_key={"a": [1]}), PREDICT, 400),
        # 50k: within max_body_bytes (4 MB), refused by counting their objects before parsing
        ("50k input names", "infer", _many_inputs(50_000, same_name=False), PREDICT, 400),
        ("50k duplicated names", "infer", _many_inputs(50_000, same_name=True), PREDICT, 400),
        ("long text value", "infer", _features(1, carrier=["U" * 1_000_000]), PREDICT, 400),
        (
            "100k parameters",
            "infer",
            features_request(1) | {"parameters": {f"p{i}": i for i in range(100_000)}},
            PREDICT,
            400,
        ),
        ("1e400", "infer", _raw_number(b"1e400"), PREDICT, 400),
        ("10**400", "infer", _raw_number(b"1" + b"0" * 400), PREDICT, 400),
        ("-10**400", "infer", _raw_number(b"-1" + b"0" * 400), PREDICT, 400),
        ("10**5000", "infer", _raw_number(b"1" + b"0" * 5000), PREDICT, 400),
        ("year 1", "infer", _departure("0001-01-01T00:00:00"), PREDICT, 400),
        ("year 1 + offset", "infer", _departure("0001-01-01T00:00:00+05:00"), PREDICT, 400),
        ("year 9999", "infer", _departure("9999-12-31T23:59:00-05:00"), PREDICT, 400),
        ("garbage date", "infer", _departure("not a date"), PREDICT, 400),
        ("event ts year 9999", "infer", _with_event_ts("9999-12-31T23:59:59"), PREDICT, 400),
        ("deep nesting", "infer", _nested(100_000), PREDICT, 400),
        (
            "huge shape",
            "infer",
            _raw_number(b"1").replace(b"[2]", b"[" + b"9" * 400 + b"]", 1),
            PREDICT,
            TOO_MUCH,
        ),
        ("body over the limit", "infer", b'{"pad": "' + b"x" * 9_000_000 + b'"}', PREDICT, 413),
        ("text/plain", "infer", features_request(1), PREDICT | {"Content-Type": "text/plain"}, 415),
        (
            "form post",
            "infer",
            b"a=1",
            PREDICT | {"Content-Type": "application/x-www-form-urlencoded"},
            415,
        ),
        (
            "no content type",
            "infer",
            features_request(1),
            {"Authorization": PREDICT["Authorization"]},
            415,
        ),
        (
            "form post to admin",
            "/admin/promote",
            b"reason=x",
            {"Authorization": f"Bearer {ADMIN_TOKEN}", "Content-Type": "text/plain"},
            415,
        ),
        (
            "huge label list",
            "feedback",
            {"request_id": rid, "labels": [0] * 1_000_000},
            FEEDBACK,
            TOO_MUCH,
        ),
        (
            "long prediction ids",
            "feedback",
            {"prediction_ids": [long], "labels": [1]},
            FEEDBACK,
            400,
        ),
        (
            "many prediction ids",
            "feedback",
            {"prediction_ids": [f"{rid}:{i}" for i in range(100_000)], "labels": [1] * 100_000},
            FEEDBACK,
            TOO_MUCH,
        ),
        ("long request id", "feedback", {"request_id": long, "labels": [1]}, FEEDBACK, 400),
    ]


@pytest.fixture
def hostile_server(
    serving_settings: Callable[..., Settings],
    register: Callable[..., str],
    server: Callable[[Settings], Any],
) -> tuple[Settings, Any]:
    settings = serving_settings(
        serving={
            "auth": {
                "enabled": True,
                "admin_tokens": [ADMIN_TOKEN],
                "predict_tokens": [PREDICT_TOKEN],
                "feedback_tokens": [FEEDBACK_TOKEN],
            },
            "body_timeout_s": BODY_TIMEOUT_S,
            "max_body_reads_per_caller": BODY_READS,
            "max_concurrency": CONCURRENCY,
        }
    )
    register("good", settings, alias="champion")
    return settings, server(settings)


def test_hostile_requests_get_4xx_in_bounded_time_and_memory_and_lose_nothing(
    hostile_server: tuple[Settings, Any],
) -> None:
    settings, proc = hostile_server
    name = settings.mlflow.registered_model
    infer = f"/v2/models/{name}/infer"
    client = httpx.Client(base_url=proc.url, timeout=TIMEOUT_S)
    with client:
        before = [f"before-{uuid.uuid4().hex[:8]}-{i}" for i in range(10)]
        for rid in before:
            r = client.post(
                infer, content=orjson.dumps(features_request(2, request_id=rid)), headers=PREDICT
            )
            assert r.status_code == 200, r.text

        def captured(ids: list[str]) -> bool:
            log = read_predictions(settings)
            return not log.empty and set(ids) <= set(log["request_id"])

        wait_for(lambda: captured(before), timeout=20, what="the first predictions captured")
        baseline = _rss_kib(proc.proc.pid)
        wrong: list[str] = []
        with _rss_peak(proc.proc.pid) as peak:
            for vector, path, body, headers, status in _matrix(before[0]):
                raw = body if isinstance(body, bytes) else orjson.dumps(body)
                url = path if path.startswith("/") else f"/v2/models/{name}/{path}"
                r = client.post(url, content=raw, headers=headers)
                if r.status_code not in _expected(status) or set(r.json()) != {"error"}:
                    wrong.append(f"{vector}: {r.status_code} {r.text[:120]}")
            status, sent = _chunked_post(proc.url, infer, PREDICT, CHUNKED_TOTAL)
            if status != 413:
                wrong.append(f"chunked oversized body: {status} after {sent} bytes")
            after = f"after-{uuid.uuid4().hex[:8]}"
            r = client.post(
                infer, content=orjson.dumps(features_request(1, request_id=after)), headers=PREDICT
            )
        assert wrong == []
        assert r.status_code == 200, r.text  # still serving
        assert sent < CHUNKED_TOTAL  # the server answered before the body ended
        growth_mib = (peak[0] - baseline) / 1024
        assert growth_mib < RSS_GROWTH_MIB, f"server RSS grew by {growth_mib:.0f} MiB"
        wait_for(lambda: captured([*before, after]), timeout=20, what="every prediction kept")
        metrics = client.get("/metrics").text
        assert 'driftloop_rejected_requests_total{status="400"}' in metrics


def test_auth_off_server_refuses_other_hosts_and_non_json_posts(
    serving_settings: Callable[..., Settings],
    register: Callable[..., str],
    server: Callable[[Settings], Any],
) -> None:
    """DNS rebinding: a page whose name now resolves to 127.0.0.1 reaches the development
    server with its own name in Host; a no-CORS page cannot declare JSON."""
    settings = serving_settings(serving={"auth": {"enabled": False}})
    register("good", settings, alias="champion")
    proc = server(settings)
    infer = f"{proc.url}/v2/models/{settings.mlflow.registered_model}/infer"
    body = orjson.dumps(features_request(1))
    with httpx.Client(timeout=TIMEOUT_S) as client:
        assert client.post(infer, content=body, headers=JSON).status_code == 200
        for host in ("evil.example", "evil.example:80", "127.0.0.1.nip.io:8000"):
            for method, url in (
                ("POST", infer),
                ("POST", f"{proc.url}/admin/promote"),
                ("GET", f"{proc.url}/admin/audit"),
            ):
                r = client.request(method, url, content=body, headers=JSON | {"Host": host})
                assert r.status_code == 403, (host, url, r.text)
                assert "is not served" in r.json()["error"]
        assert client.get(f"{proc.url}/v2/health/ready").status_code == 200
        promote = client.post(
            f"{proc.url}/admin/promote",
            content=b'{"reason": "x"}',
            headers={"Content-Type": "text/plain"},
        )
        assert promote.status_code == 415, promote.text
        assert json.loads(promote.text)["error"].startswith("Content-Type must be")


def _start_upload(url: str, path: str, headers: dict[str, str], body: bytes) -> socket.socket:
    """A POST whose Content-Length announces 100 bytes more than ``body``: the server waits
    for the rest, which never comes."""
    u = httpx.URL(url)
    head = [f"POST {path} HTTP/1.1", f"Host: {u.host}:{u.port}"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    head.append(f"Content-Length: {len(body) + 100}")
    sock = socket.create_connection((u.host, u.port), timeout=TIMEOUT_S)
    sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + body)
    return sock


def _answer(sock: socket.socket) -> tuple[int, bytes]:
    """(status, body) of the response on ``sock`` (read until the server closes or the
    announced body arrived), then close it."""
    data = b""
    with sock:
        while True:
            head, sep, rest = data.partition(b"\r\n\r\n")
            if sep:
                length = next(
                    (
                        int(line.split(b":", 1)[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    ),
                    None,
                )
                if length is not None and len(rest) >= length:
                    break
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            data += chunk
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.1 ") else 0
    return status, data.partition(b"\r\n\r\n")[2]


def test_one_caller_cannot_hold_the_replica_and_reused_ids_get_no_labels(
    hostile_server: tuple[Settings, Any],
) -> None:
    settings, proc = hostile_server
    name = settings.mlflow.registered_model
    infer = f"/v2/models/{name}/infer"
    whole = orjson.dumps(features_request(1))
    with httpx.Client(base_url=proc.url, timeout=TIMEOUT_S) as client:
        # slow uploads: BODY_READS of one token are held, the next is 429 at once, another
        # caller is served meanwhile, and the held ones get 408 at the body deadline
        slow = [_start_upload(proc.url, infer, PREDICT, whole[:20]) for _ in range(BODY_READS)]
        time.sleep(1.0)  # let the server start reading them (a wait, not an assertion)
        over = _answer(_start_upload(proc.url, infer, PREDICT, whole[:20]))
        served = client.post(infer, content=whole, headers=ADMIN)
        answers = [_answer(sock) for sock in slow]
        assert over[0] == 429, over
        assert b"still being received" in over[1]
        assert served.status_code == 200, served.text
        for status, body in answers:
            assert status == 408, body
            assert json.loads(body)["error"].startswith("request body not received within")

        # idle connections up to max_concurrency: uvicorn refuses requests (503) until they go
        address = (settings.serving.host, settings.serving.port)
        idle = [socket.create_connection(address, timeout=TIMEOUT_S) for _ in range(CONCURRENCY)]
        try:
            with httpx.Client(base_url=proc.url, timeout=TIMEOUT_S) as fresh:
                refused = fresh.post(infer, content=whole, headers=PREDICT)
        finally:
            for sock in idle:
                sock.close()
        assert refused.status_code == 503, refused.text

        def serves() -> bool:
            with httpx.Client(base_url=proc.url, timeout=TIMEOUT_S) as again:
                return again.post(infer, content=whole, headers=PREDICT).status_code == 200

        wait_for(serves, timeout=20, what="serving again once the idle connections closed")

        # a reused request id: its labels are refused (409), nothing of them is stored
        rid, good = f"reused-{uuid.uuid4().hex[:8]}", f"unique-{uuid.uuid4().hex[:8]}"
        for n in (1, 10):  # the victim's request, then one with more rows under its id
            body = orjson.dumps(features_request(n, request_id=rid))
            assert client.post(infer, content=body, headers=PREDICT).status_code == 200
        one = orjson.dumps(features_request(1, request_id=good))
        assert client.post(infer, content=one, headers=PREDICT).status_code == 200
        feedback = f"/v2/models/{name}/feedback"
        for label in (
            {"request_id": rid, "labels": [1]},
            {"prediction_ids": [f"{rid}:9"], "labels": [1]},
        ):
            r = client.post(feedback, content=orjson.dumps(label), headers=FEEDBACK)
            assert r.status_code == 409, r.text
            assert r.json()["error"].startswith(f"request id '{rid}' was used by more than one")
        ok = client.post(
            feedback, content=orjson.dumps({"request_id": good, "labels": [1]}), headers=FEEDBACK
        )
        assert ok.status_code == 200, ok.text

        def stored() -> bool:
            labels = read_feedback(settings)
            return not labels.empty and good in set(labels["request_id"])

        wait_for(stored, timeout=20, what="the accepted label on disk")
        assert rid not in set(read_feedback(settings)["request_id"])
        # the capture files tell the reuse too (another replica's look-up)
        wait_for(
            lambda: served_row_counts([rid], settings) == {rid: AMBIGUOUS},
            timeout=20,
            what="the reused id's requests captured",
        )
