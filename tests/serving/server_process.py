"""The server as a child process, started the way users start it, on a free loopback port."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from modelpress.benchmarks.processes import free_port


@dataclass
class ServerProcess:
    proc: subprocess.Popen[str]
    url: str
    stderr: str = ""  # what the server wrote on stderr; read when the block ends


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without any MODELPRESS_* setting (the machine's own must not leak in), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELPRESS_")}
    return env | {"PYTHONPATH": str(Path.cwd())} | extra


@contextmanager
def server_process(
    command: Sequence[str], repository: Path, *, ready_s: float = 60, **env: str
) -> Iterator[ServerProcess]:
    """Run ``command --repository REPOSITORY --port PORT`` with ``env`` settings; the block starts once it is
    ready (within ``ready_s`` seconds), and the server is killed after it.

    The block may stop the server itself (SIGTERM); whatever still runs when it ends is killed.
    """
    port = free_port()
    argv = [*command, "--repository", str(repository), "--port", str(port)]
    proc = subprocess.Popen(argv, env=clean_env(**env), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    server = ServerProcess(proc, f"http://127.0.0.1:{port}")
    try:
        _wait_ready(server, ready_s)
        yield server
    finally:
        if proc.poll() is None:
            proc.kill()
        if not proc.stderr.closed:  # _wait_ready read it when the server exited early
            server.stderr = proc.communicate()[1]


def _wait_ready(server: ServerProcess, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise AssertionError(f"server exited early: {server.proc.communicate()[1]}")
        try:
            if httpx.get(f"{server.url}/v2/health/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("server not ready in time")
