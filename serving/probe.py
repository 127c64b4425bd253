"""``python -m serving.probe [--socket PATH] [URL_PATH]``: a Kubernetes exec probe that asks this
replica itself, over its Unix socket (``serving.probe_socket``), not host:port. Where replicas
share a TCP port (SO_REUSEPORT, the chart's host-network mode), a TCP probe reaches whichever
replica the kernel picks, so one cold replica could fail a warm one's probe, or pass its own.

Exit 0 on HTTP 200, 1 otherwise with one line saying why. Standard library only: the probe runs
every few seconds in each pod and must start fast (the ``serving`` package imports nothing).
"""

from __future__ import annotations

import argparse
import http.client
import os
import socket
import sys

DEFAULT_SOCKET = "/tmp/driftloop-serving.sock"
#: serving.dataplane.SYNTHETIC_HEADER (not imported: the probe must start fast)
SYNTHETIC_HEADER = "X-Driftloop-Synthetic"


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP/1.1 over a Unix stream socket."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.socket_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def probe(path: str, socket_path: str, timeout: float = 4.0) -> tuple[bool, str]:
    """(healthy, why) for GET ``path`` on the replica listening at ``socket_path``."""
    conn = UnixHTTPConnection(socket_path, timeout)
    try:
        # marked like any probe traffic (serving.dataplane.SYNTHETIC_HEADER): should a probe
        # ever infer, its rows are served but never judged by the monitor or the canary
        conn.request("GET", path, headers={"Connection": "close", SYNTHETIC_HEADER: "probe"})
        resp = conn.getresponse()
        body = resp.read(300).decode("utf-8", "replace").replace("\n", " ")
    except (OSError, http.client.HTTPException) as exc:
        return False, f"{socket_path}: {exc.__class__.__name__}: {exc}"
    finally:
        conn.close()
    return resp.status == 200, f"{path}: HTTP {resp.status} {body}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serving.probe", description=__doc__)
    parser.add_argument("path", nargs="?", default="/v2/health/live", help="URL path to GET")
    parser.add_argument(
        "--socket",
        default=os.environ.get("DRIFTLOOP_SERVING__PROBE_SOCKET", DEFAULT_SOCKET),
        help="the replica's Unix socket (default: $DRIFTLOOP_SERVING__PROBE_SOCKET)",
    )
    parser.add_argument("--timeout", type=float, default=4.0)
    args = parser.parse_args(argv)
    ok, why = probe(args.path, args.socket, args.timeout)
    if not ok:
        sys.stderr.write(f"probe failed: {why}\n")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
