"""The replica's own probe socket (``serving.probe_socket``) and the exec probe that uses it."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from serving.__main__ import probe_socket
from serving.probe import main as probe_main
from serving.probe import probe


def test_probe_socket_is_owner_only_and_replaces_a_stale_one(tmp_path: Path) -> None:
    path = tmp_path / "run" / "probe.sock"
    first = probe_socket(path)
    first.close()  # a process that died without removing its socket file
    assert path.exists()
    second = probe_socket(path)
    try:
        assert oct(os.stat(path).st_mode & 0o777) == "0o600"
        second.listen(1)
        client = socket.socket(socket.AF_UNIX)
        client.connect(str(path))
        client.close()
    finally:
        second.close()


def test_probe_socket_refuses_a_path_that_is_not_a_socket(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text("{}")
    with pytest.raises(ValueError, match="not a socket"):
        probe_socket(path)
    assert path.read_text() == "{}"  # nothing lost


def test_probe_fails_naming_the_socket_when_nothing_listens(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = str(tmp_path / "none.sock")
    ok, why = probe("/v2/health/live", missing, timeout=1)
    assert not ok
    assert missing in why
    assert probe_main(["--socket", missing]) == 1
    assert missing in capsys.readouterr().err
