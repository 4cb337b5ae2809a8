"""Triton's own benchmark tool against the server: the perf_analyzer of the tritonclient wheel, over HTTP and gRPC.

It reads the model configuration (Triton's extension) and the statistics before and after measuring, and stops on
what Triton would not answer: no configuration, or compute counts that differ.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # a few seconds per protocol

PERF_ANALYZER = Path(sys.executable).parent / "perf_analyzer"


def _environment() -> dict[str, str]:
    """perf_analyzer's environment: libcudart.so.12 from the nvidia-cuda-runtime-cu12 wheel (the dev extra)."""
    env = dict(os.environ)
    try:
        import nvidia.cuda_runtime
    except ImportError:
        return env
    libs = [str(Path(p) / "lib") for p in nvidia.cuda_runtime.__path__]
    env["LD_LIBRARY_PATH"] = os.pathsep.join([*libs, env.get("LD_LIBRARY_PATH", "")]).rstrip(os.pathsep)
    return env


def _missing_libraries(env: dict[str, str]) -> list[str]:
    done = subprocess.run(["ldd", str(PERF_ANALYZER)], env=env, capture_output=True, text=True, check=False)
    return [line.split()[0] for line in done.stdout.splitlines() if "not found" in line]


@pytest.fixture(scope="module")
def perf_env() -> dict[str, str]:
    if not PERF_ANALYZER.is_file():
        pytest.skip(f"no perf_analyzer at {PERF_ANALYZER} (it comes with the tritonclient wheel)")
    env = _environment()
    missing = _missing_libraries(env)
    if missing:
        pytest.skip(f"perf_analyzer cannot load {', '.join(missing)} (make tools installs libb64-0d)")
    return env


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_perf_analyzer_measures_the_server_to_the_end(served, perf_env, protocol):
    url = served.url if protocol == "http" else served.grpc
    argv = [str(PERF_ANALYZER), "-m", "digits", "-u", url, "-i", protocol, "--concurrency-range", "2",
            "--measurement-mode", "count_windows", "--measurement-request-count", "100",
            "--stability-percentage", "999", "--max-trials", "3"]  # fmt: skip
    done = subprocess.run(argv, env=perf_env, capture_output=True, text=True, timeout=120, check=False)
    report = done.stdout + done.stderr
    assert done.returncode == 0, report
    assert "Throughput:" in report
    # The server side came from our statistics: requests counted, and the compute breakdown perf_analyzer makes.
    assert "Successful request count:" in report
    assert "compute infer" in report
