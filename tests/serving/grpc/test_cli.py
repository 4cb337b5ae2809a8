"""``modelpress serve --grpc-port`` as a user runs it: REST and gRPC from one process."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from modelpress.benchmarks.processes import free_port
from tests.serving.models import FEATURES
from tests.serving.server_process import server_process

pytestmark = pytest.mark.slow  # a server process: a few seconds


def test_serve_with_grpc_port_answers_tritonclient_and_stops_on_sigterm(grpc_repo):
    port = free_port()
    command = [str(Path(sys.executable).parent / "modelpress"), "serve", "--grpc-port", str(port)]
    done: list = []
    # Longer than the gRPC server's own stop grace (1 s): only the drain's count of the call keeps it alive.
    slow = {"MODELPRESS_MAX_QUEUE_DELAY_US": "1500000", "MODELPRESS_WAIT_WHEN_IDLE": "true"}
    with server_process(command, grpc_repo, **slow) as server:
        client = grpcclient.InferenceServerClient(f"127.0.0.1:{port}")
        assert client.is_server_ready()
        tensor = grpcclient.InferInput("input", [2, FEATURES], "FP32")
        tensor.set_data_from_numpy(np.ones((2, FEATURES), np.float32))
        assert client.infer("digits", [tensor]).as_numpy("logits").shape == (2, 10)
        # A call in flight when SIGTERM comes is answered (the drain counts gRPC calls too), then the server stops.
        pending = client.async_infer("digits", [tensor], callback=lambda result, error: done.append((result, error)))
        time.sleep(0.1)
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(timeout=30) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal it caught
        assert pending is not None
        deadline = time.monotonic() + 10
        while not done and time.monotonic() < deadline:  # the callback runs on a client thread
            time.sleep(0.02)
        assert len(done) == 1
        result, error = done[0]
        assert error is None, error
        assert result.as_numpy("logits").shape == (2, 10)
    assert "gRPC (Open Inference Protocol) on 127.0.0.1:" in server.stderr
