"""The server as users run it: a real uvicorn on a free port, tritonclient, the CLI in a subprocess."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.serving.conftest import settings_for, uvicorn_server
from tests.serving.models import CLASSES, FEATURES, classifier_reference
from tests.serving.server_process import clean_env, server_process

BIN = Path(sys.executable).parent
BODY = {"inputs": [{"name": "input", "shape": [1, FEATURES], "datatype": "FP32", "data": [0.25] * FEATURES}]}


def test_tritonclient_metadata_json_and_binary(repo, digits_weights):
    import tritonclient.http as triton

    with uvicorn_server(settings_for(repo)) as url:
        client = triton.InferenceServerClient(url.removeprefix("http://"))
        assert client.is_server_live()
        assert client.is_server_ready()
        assert client.is_model_ready("digits")
        assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
        meta = client.get_model_metadata("digits")
        assert meta["inputs"][0]["shape"] == [-1, FEATURES]
        x = np.random.default_rng(2).standard_normal((3, FEATURES)).astype(np.float32)
        want = classifier_reference(x, *digits_weights)
        for binary_in, binary_out in ((False, False), (True, True), (True, False), (False, True)):
            inp = triton.InferInput("input", list(x.shape), "FP32")
            inp.set_data_from_numpy(x, binary_data=binary_in)
            out = triton.InferRequestedOutput("logits", binary_data=binary_out)
            result = client.infer("digits", [inp], outputs=[out], request_id="r1")
            np.testing.assert_allclose(result.as_numpy("logits"), want, rtol=1e-5, atol=1e-5)
            assert result.get_response()["id"] == "r1"
        # no outputs listed: tritonclient asks for every output in binary (binary_data_output)
        inp = triton.InferInput("input", list(x.shape), "FP32")
        inp.set_data_from_numpy(x)
        assert client.infer("digits", [inp]).as_numpy("logits").shape == (3, CLASSES)
        stats = client.get_inference_statistics("digits")
        assert stats["model_stats"][0]["inference_count"] == 15
        with pytest.raises(triton.InferenceServerException, match="not served"):
            client.get_model_metadata("ghost")


def test_tritonclient_other_datatypes(repo):
    import tritonclient.http as triton

    with uvicorn_server(settings_for(repo)) as url:
        client = triton.InferenceServerClient(url.removeprefix("http://"))
        arrays = {
            "ids": np.array([[1, 2, 3, 4]], dtype=np.int64),
            "mask": np.array([[True, False, True, True]]),
            "x": np.array([[1.0, 2.0, 3.0]]),
            "h": np.array([[0.5, 1.5]], dtype=np.float16),
            "u8": np.array([[7, 9]], dtype=np.uint8),
            "text": np.array([[b"bonjour"]], dtype=object),
        }
        datatypes = {"ids": "INT64", "mask": "BOOL", "x": "FP64", "h": "FP16", "u8": "UINT8", "text": "BYTES"}
        inputs = []
        for name, arr in arrays.items():
            item = triton.InferInput(name, list(arr.shape), datatypes[name])
            item.set_data_from_numpy(arr, binary_data=True)
            inputs.append(item)
        result = client.infer("multi", inputs)
        assert result.as_numpy("sum_ids").tolist() == [[10]]
        assert result.as_numpy("not_mask").tolist() == [[False, True, False, False]]
        assert result.as_numpy("h2").dtype == np.float16
        assert result.as_numpy("h2").tolist() == [[1.0, 3.0]]
        assert result.as_numpy("u8_out").tolist() == [[7, 9]]
        assert result.as_numpy("text_out").tolist() == [[b"bonjour"]]


def test_real_uvicorn_serves_v1_and_metrics(repo):
    with uvicorn_server(settings_for(repo)) as url:
        r = httpx.post(f"{url}/v1/models/digits:predict", json={"instances": [[3.0] * FEATURES]}, timeout=30)
        assert r.status_code == 200
        assert set(r.json()["predictions"][0]) == {"label", "probabilities"}
        assert "modelpress_requests_total" in httpx.get(f"{url}/metrics", timeout=30).text


def _queue_depth(url: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=5).text
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("modelpress_queue_depth{")
    )


@pytest.mark.slow
def test_cli_serves_without_torch_and_drains_on_sigterm(repo):
    """`modelpress serve`: torch never loaded; SIGTERM → not ready and new requests 503, in-flight finishes, exit."""
    # A long queue delay (also when idle) keeps one request in flight while SIGTERM arrives.
    with server_process(
        [str(BIN / "modelpress"), "serve"],
        repo,
        MODELPRESS_MAX_QUEUE_DELAY_US="1500000",
        MODELPRESS_MAX_BATCH_SIZE="1000",
        MODELPRESS_WAIT_WHEN_IDLE="true",
        MODELPRESS_DRAIN_GRACE_S="2",  # keeps answering 503 for 2 s even on a slow machine
        MODELPRESS_LOG_LEVEL="warning",
    ) as server:
        proc, url = server.proc, server.url
        maps = Path(f"/proc/{proc.pid}/maps")
        if maps.exists():
            assert "libtorch" not in maps.read_text()
        inflight: dict = {}
        worker = threading.Thread(
            target=lambda: inflight.update(r=httpx.post(f"{url}/v2/models/digits/infer", json=BODY, timeout=30))
        )
        worker.start()
        for _ in range(200):  # until the request sits in the queue (bounded: 10 s)
            if _queue_depth(url) >= 1:
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        states = []
        for _ in range(100):
            r = httpx.get(f"{url}/v2/health/ready", timeout=5)
            states.append(r.status_code)
            if r.status_code == 503:
                break
            time.sleep(0.01)
        assert states[-1] == 503
        rejected = httpx.post(f"{url}/v2/models/digits/infer", json=BODY, timeout=5)
        assert rejected.status_code == 503
        assert "shutting down" in rejected.json()["error"]
        worker.join(timeout=30)
        assert inflight["r"].status_code == 200
        proc.wait(timeout=30)


@pytest.mark.slow
def test_python_m_serving_has_no_torch_in_sys_modules(repo, tmp_path):
    """Run the server module as `python -m modelpress.serving` does, and read sys.modules from inside the process."""
    report = tmp_path / "modules.json"
    probe = (
        # Written to a temporary name then renamed, so the test never reads a half-written file.
        "import json, os, signal, sys; from pathlib import Path\n"
        f"def dump(*a): Path({str(report)!r} + '.tmp').write_text(json.dumps(sorted(sys.modules))); "
        f"os.replace({str(report)!r} + '.tmp', {str(report)!r})\n"
        "signal.signal(signal.SIGUSR1, dump)\n"
        "from modelpress.serving.__main__ import main\n"
        "sys.exit(main())\n"
    )
    with server_process([sys.executable, "-c", probe], repo, MODELPRESS_LOG_LEVEL="warning") as server:
        proc, url = server.proc, server.url
        assert httpx.post(f"{url}/v2/models/digits/infer", json=BODY, timeout=30).status_code == 200
        assert httpx.post(f"{url}/v1/models/digits:predict", json={"instances": [[1.0] * FEATURES]}).status_code == 200
        proc.send_signal(signal.SIGUSR1)
        for _ in range(100):
            if report.exists():
                break
            time.sleep(0.05)
        modules = json.loads(report.read_text())
        assert "onnxruntime" in modules
        assert "modelpress.serving.app" in modules
        assert not [m for m in modules if m == "torch" or m.startswith("torch.")]
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def test_cli_bad_input_is_one_line_exit_2(tmp_path):
    missing = subprocess.run(
        [str(BIN / "modelpress"), "serve", "--repository", str(tmp_path / "nope")],
        env=clean_env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert missing.returncode == 2
    assert missing.stderr.strip() == f"error: model repository {tmp_path / 'nope'} is not a directory"
    gpu = subprocess.run(
        [str(BIN / "modelpress"), "serve", "--repository", str(tmp_path), "--require-gpu"],
        env=clean_env(MODELPRESS_PROVIDERS="CUDAExecutionProvider"), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert gpu.returncode == 2
    assert "a GPU is required" in gpu.stderr
    assert "Traceback" not in gpu.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "modelpress.serving", "--repository", str(tmp_path), "--port", "99999"],
        env=clean_env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert bad.returncode == 2
    assert "port" in bad.stderr
    assert "Traceback" not in bad.stderr
    no_spin = subprocess.run(
        [sys.executable, "-m", "modelpress.serving", "--repository", str(tmp_path)],
        env=clean_env(MODELPRESS_SHARED_THREAD_POOL="true", MODELPRESS_ALLOW_SPINNING="false"),
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert no_spin.returncode == 2
    assert no_spin.stderr.strip() == (
        "error: settings: allow_spinning=false needs shared_thread_pool=false (MODELPRESS_SHARED_THREAD_POOL=false): "
        "ONNX Runtime's shared thread pool always lets its threads spin"
    )
