"""``mlflow server`` as one process instead of two.

``mlflow server`` prepares the server (arguments, the backend store's migrations, the auth app's
admin) and then starts the web server, ``python -m uvicorn ...``, as a child process, and stays
behind only to wait for it and forward signals. That launcher keeps everything ``mlflow.cli``
imported resident for the life of the server: ~270 MB of RSS on this machine, as much as the
server itself.

``python -m driftloop.embedded.mlflow_server ARGS`` runs MLflow's own ``server`` command with the
same arguments. Where MLflow would start the web server as a child, it executes that same
command, with the environment MLflow built for it, in place of the launcher (``os.execvpe``): the
process the platform started, its PID and its signals are the web server's, and the launcher's
memory is gone. Nothing else changes: the options, the checks and the start-up are MLflow's.

MLflow 3 hands the command to ``mlflow.server._exec_cmd`` (a module global that
``_run_server`` looks up when it runs). Should a later MLflow start its server another way, the
replacement is not called (or, without ``_exec_cmd``, not installed) and the server runs as
before, as two processes (``tests/integration/platform/test_platform_auth.py`` notices). The
exec skips MLflow's job-execution runner: the platform starts MLflow with
``MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false`` (``services.mlflow_service``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from typing import Any


def exec_in_place(original: Callable[..., Any]) -> Callable[..., Any]:
    """A stand-in for MLflow's ``_exec_cmd``: the asynchronous start of the web server execs
    it in place; every other call goes to ``original``."""

    def run(
        cmd: Sequence[str],
        *,
        extra_env: dict[str, str] | None = None,
        capture_output: bool = True,
        synchronous: bool = True,
        **kwargs: Any,
    ) -> Any:
        if synchronous or capture_output or kwargs or isinstance(cmd, str):
            return original(
                cmd,
                extra_env=extra_env,
                capture_output=capture_output,
                synchronous=synchronous,
                **kwargs,
            )
        env = {**os.environ, **(extra_env or {})}
        sys.stdout.flush()
        sys.stderr.flush()
        os.execvpe(cmd[0], list(cmd), env)

    return run


def main(argv: list[str] | None = None) -> int:
    import mlflow.server
    from mlflow.cli import cli

    original = getattr(mlflow.server, "_exec_cmd", None)
    if original is not None:
        mlflow.server._exec_cmd = exec_in_place(original)  # type: ignore[attr-defined]
    args = list(sys.argv[1:] if argv is None else argv)
    cli.main(args=["server", *args], prog_name="mlflow", standalone_mode=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
