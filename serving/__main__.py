"""``python -m serving``: the inference API on settings.serving.host/port (uvicorn, one worker,
access log off: it costs ~20 % throughput; requests are in the inference log and /metrics).

SIGTERM (Kubernetes stopping the pod) is a graceful shutdown: uvicorn stops accepting, answers
the requests in flight (for at most :func:`request_drain_s`; a request still running then is cut
and never acknowledged), then runs the app's lifespan shutdown, where the capture writers flush
every acknowledged prediction within ``serving.capture_shutdown_s``. The pod's termination grace
period must cover both (the chart's default leaves room).

Load bounds: request bodies are bounded per admitted caller by :mod:`serving.routes.deps`
(at most ``max_body_reads_per_caller`` bodies of ``max_body_bytes`` at once, each within
``body_timeout_s``), after the token check. ``serving.max_concurrency`` (uvicorn's
``limit_concurrency``, off by default) caps open connections and requests in flight (503 above
it); uvicorn counts idle connections too and has no deadline for request headers, so with the
cap on, anyone who can connect could hold every slot: set it only behind a proxy (ingress) that
bounds header time.
"""

from __future__ import annotations

import os
import socket
import stat
import sys
from pathlib import Path

import uvicorn

from driftloop.errors import DriftloopError
from driftloop.logs import configure_logging
from driftloop.settings import Settings, get_settings
from serving.app import create_app


def request_drain_s(settings: Settings) -> int:
    """Seconds uvicorn waits on SIGTERM for the requests in flight (model calls take ms)."""
    return max(1, min(5, int(settings.serving.capture_shutdown_s / 4)))


def bound_socket(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """A TCP socket bound to ``host:port`` (SO_REUSEADDR; SO_REUSEPORT when asked), not yet
    listening: uvicorn listens on it after the app's startup, so the kernel sends this process
    no connection before then."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """A socket of ``host:port`` that other processes of this user may bind too (SO_REUSEPORT)."""
    return bound_socket(host, port, reuse_port=True)


def probe_socket(path: Path) -> socket.socket:
    """A Unix socket at ``path`` (owner only) answering the same app: the replica's own address,
    which a probe can reach even where replicas share one TCP port (SO_REUSEPORT). A stale file
    from an earlier process is replaced; anything else at the path is refused."""
    if path.exists() or path.is_symlink():
        if not stat.S_ISSOCK(path.lstat().st_mode):
            raise ValueError(f"serving.probe_socket {path} exists and is not a socket")
        path.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(path))
        path.chmod(0o600)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def listen_sockets(settings: Settings) -> list[socket.socket] | None:
    """The sockets to serve on, or None for uvicorn's own bind of host:port."""
    s = settings.serving
    if not s.reuse_port and s.probe_socket is None:
        return None
    tcp = bound_socket(s.host, s.port, reuse_port=s.reuse_port)
    if s.probe_socket is None:
        return [tcp]
    try:
        return [tcp, probe_socket(s.probe_socket)]
    except (OSError, ValueError):
        tcp.close()
        raise


def run(settings: Settings) -> None:
    """Serve ``settings`` in the foreground until interrupted (``driftloop serve`` uses it)."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    s = settings.serving
    config = uvicorn.Config(
        create_app(settings),
        host=s.host,
        port=s.port,
        workers=1,
        access_log=False,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=request_drain_s(settings),
        limit_concurrency=s.max_concurrency or None,
    )
    server = uvicorn.Server(config)
    sockets = listen_sockets(settings)
    try:
        server.run(sockets=sockets)
    finally:
        if s.probe_socket is not None:
            s.probe_socket.unlink(missing_ok=True)


def main() -> None:
    try:
        settings = get_settings()
        configure_logging(settings.log_level)
        run(settings)
    except (DriftloopError, ValueError, OSError) as exc:  # refused: one readable line
        sys.stderr.write(f"error: {str(exc).splitlines()[0]}\n")
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
