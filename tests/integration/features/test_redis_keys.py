"""Listing the online store's entity keys on a real Redis that requires a password (the chart's
Redis does): found live by `make k8s-e2e`, where the key lister ignored the password in Feast's
connection string and every flight-mode request got 503."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from driftloop.errors import ServiceUnavailableError
from driftloop.features.keys import online_entity_keys

pytestmark = pytest.mark.integration
PASSWORD = uuid.uuid4().hex


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def redis_port(tmp_path: Path) -> Iterator[int]:
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.skip("redis-server is not installed on this machine (Debian package redis-server)")
    port = _free_port()
    conf = tmp_path / "redis.conf"
    conf.write_text(f'requirepass "{PASSWORD}"\n')
    conf.chmod(0o600)
    proc = subprocess.Popen(
        [
            exe,
            str(conf),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


def _store(port: int, password: str | None) -> Any:
    connection = f"127.0.0.1:{port}" + (f",password={password}" if password else "")
    online = SimpleNamespace(
        type="redis", connection_string=connection, redis_type="redis", sentinel_master=None
    )
    config = SimpleNamespace(
        project="driftloop", online_store=online, entity_key_serialization_version=3
    )
    return SimpleNamespace(config=config)


def test_keys_are_listed_from_a_redis_with_a_password(redis_port: int) -> None:
    import redis
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    key = EntityKey(join_keys=["carrier"], entity_values=[Value(string_val="UA")])
    blob = serialize_entity_key(key, entity_key_serialization_version=3) + b"driftloop"
    redis.Redis(port=redis_port, password=PASSWORD).hset(blob, "x", "1")
    view = SimpleNamespace(entity_columns=[SimpleNamespace(name="carrier")])

    rows = online_entity_keys(_store(redis_port, PASSWORD), view)  # type: ignore[arg-type]

    assert rows == [{"carrier": "UA"}]
    with pytest.raises(ServiceUnavailableError, match="redis online store unreachable"):
        online_entity_keys(_store(redis_port, None), view)  # type: ignore[arg-type]
