"""The images' entry point, run outside Docker with the image's Python world and environment.

No Docker engine runs here, so this is the closest to `docker run`: the ENTRYPOINT command line from the
Dockerfile, in a stand-in for the image's site-packages (only what modelpress[serve] installs, plus the
serving and modelpress packages; see image_env.py), the ENV of the target and the ConfigMap's settings, on
loopback and a free port.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from modelpress.benchmarks.processes import free_port
from tests.deploy.files import PREFIX, ROOT, Stage, one


def _image_env(stage: Stage, configmap: dict, image_path: Path, **overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(PREFIX) and not k.startswith("PYTHON")}
    env["PYTHONPATH"] = str(image_path)
    env.update({k: v for k, v in stage.env().items() if k.startswith(PREFIX)})
    env.update({k: str(v) for k, v in configmap["data"].items()})
    env.update(overrides)
    return env


def _python(*args: str) -> list[str]:
    """The interpreter without site-packages: only the standard library and PYTHONPATH (the image stand-in).

    Run it with ``cwd=`` the stand-in (as the image's WORKDIR holds no sources): ``-c`` and ``-m`` put the
    working directory first on sys.path, and from the project root it would import the source tree.
    """
    return [sys.executable, "-S", *args]


def _entrypoint(stage: Stage) -> list[str]:
    """The ENTRYPOINT; its console script `modelpress` is `python -m modelpress` (what the script calls)."""
    command = stage.last("ENTRYPOINT").exec_form()
    assert command[0] == "modelpress"
    return _python("-m", "modelpress", *command[1:])


def _healthcheck(stage: Stage) -> list[str]:
    command = stage.last("HEALTHCHECK").exec_form()
    assert command[0] == "python"
    return _python(*command[1:])


def _serving_modules() -> list[str]:
    return sorted(
        ".".join(("modelpress", *path.relative_to(ROOT).with_suffix("").parts)).removesuffix(".__init__")
        for path in (ROOT / "serving").rglob("*.py")
    )


def test_image_has_no_torch_and_imports_all_of_serving(serve_image_path: Path) -> None:
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(serve_image_path)}
    no_torch = subprocess.run(
        _python("-c", "import torch"), env=env, cwd=serve_image_path, capture_output=True, text=True, timeout=60
    )
    assert no_torch.returncode != 0
    assert "No module named 'torch'" in no_torch.stderr
    code = "\n".join(
        [
            "import importlib, sys",
            "for name in sys.argv[1:]: importlib.import_module(name)",
            "from modelpress.cli import build_app",
            "build_app()",
        ]
    )
    imports = subprocess.run(
        _python("-c", code, *_serving_modules()),
        env=env,
        cwd=serve_image_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert imports.returncode == 0, imports.stderr


def test_serve_entrypoint_runs_healthcheck_passes_and_drains(
    stages: dict[str, Stage], rendered: dict[str, list[dict]], tiny_repository, serve_image_path: Path, tmp_path: Path
) -> None:
    stage = stages["serve"]
    configmap = next(c for c in rendered["overlays/cpu"] if c["kind"] == "ConfigMap")
    port = free_port()
    secret = tmp_path / "token"  # stands in for the Secret the Deployment mounts
    secret.write_text("entrypoint-test-token\n")
    env = _image_env(
        stage,
        configmap,
        serve_image_path,
        MODELPRESS_REPOSITORY=str(tiny_repository),
        MODELPRESS_HOST="127.0.0.1",
        MODELPRESS_PORT=str(port),
        MODELPRESS_AUTH_TOKEN_FILE=str(secret),
    )
    healthcheck = _healthcheck(stage)
    proc = subprocess.Popen(
        _entrypoint(stage), env=env, cwd=serve_image_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        ready = False
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                ready = httpx.get(f"{base}/v2/health/ready", timeout=2).status_code == 200
            except httpx.TransportError:
                ready = False
            if ready:
                break
            time.sleep(0.2)
        assert ready, f"server not ready within 90 s; exit code {proc.poll()}"
        check = subprocess.run(healthcheck, env=env, capture_output=True, text=True, timeout=30)
        assert check.returncode == 0, check.stderr
        body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]}
        assert httpx.post(f"{base}/v2/models/tiny/infer", json=body, timeout=10).status_code == 401
        token = {"Authorization": "Bearer entrypoint-test-token"}
        answer = httpx.post(f"{base}/v2/models/tiny/infer", json=body, headers=token, timeout=10)
        assert answer.status_code == 200
        assert answer.json()["outputs"][0]["shape"] == [1, 3]
        # What the kubelet sends after preStop: a graceful shutdown (uvicorn re-raises SIGTERM once it is done,
        # so the exit status is the signal's, as for any process ended by SIGTERM).
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=60)
        assert proc.returncode in (0, -signal.SIGTERM), output
        assert "Application shutdown complete" in output, output
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    # The same HEALTHCHECK fails once nothing listens: Docker would mark the container unhealthy.
    check = subprocess.run(healthcheck, env=env, capture_output=True, text=True, timeout=30)
    assert check.returncode != 0


def test_gpu_settings_refuse_to_start_without_cuda(
    stages: dict[str, Stage], rendered: dict[str, list[dict]], tiny_repository, serve_image_path: Path
) -> None:
    """The GPU image's settings (CUDA first, REQUIRE_GPU) fail fast here, where ONNX Runtime has no CUDA."""
    stage = stages["serve-gpu"]
    configmap = one(rendered["overlays/gpu"], "ConfigMap")
    env = _image_env(
        stage,
        configmap,
        serve_image_path,
        MODELPRESS_REPOSITORY=str(tiny_repository),
        MODELPRESS_HOST="127.0.0.1",
        MODELPRESS_PORT=str(free_port()),
    )
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this ONNX Runtime has the CUDA provider: the GPU settings may legitimately start here")
    result = subprocess.run(
        _entrypoint(stage), env=env, cwd=serve_image_path, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "CUDA" in result.stderr
    assert "Traceback" not in result.stderr
