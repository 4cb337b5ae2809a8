"""Build the `serve` image and check it as a platform team would: `make image`.

    make image                                   # docker or podman, whichever answers
    make image ENGINE=podman BUILD_FLAGS="..."   # a given engine, extra `build` flags (e.g. a CA bundle mount)

The image serves a small model repository (the demo's, made with recipes/digits.yaml when it is missing) on
127.0.0.1 only (host network, so nothing is published beyond loopback) and must: become ready, run as a non-root
user whose HOME exists, have neither torch nor pip, answer a V2 and a V1 request for a model with numeric inputs,
and stop on SIGTERM. Where no container engine answers, it says it is skipped and exits 0. Exit code 1 on a
failed check, with the check named.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMAGE = "modelpress-serve:dev"
ENGINES = ("docker", "podman")
NUMERIC = {"FP32": 0.5, "FP64": 0.5, "FP16": 0.5, "INT64": 1, "INT32": 1}
# Printed inside the container: uid, HOME and whether it is a folder, whether torch / pip can be imported.
PROBE = (
    "import importlib.util as u, json, os; print(json.dumps({'uid': os.getuid(), 'home': os.environ.get('HOME'), "
    "'home_exists': os.path.isdir(os.environ.get('HOME') or '/nonexistent'), "
    "'torch': u.find_spec('torch') is not None, 'pip': u.find_spec('pip') is not None}))"
)


class ImageCheckError(Exception):
    """One of the image's checks did not hold; the message says which and what was seen."""


@dataclass
class Model:
    """A model of the repository whose inputs are all numeric, with one row of input for each."""

    name: str
    inputs: list[tuple[str, str, list[int]]]  # (name, datatype, shape of one row with dynamic dims as 1)


def find_engine(wanted: str | None) -> str | None:
    """The first engine (``wanted``, else docker then podman) on PATH that answers ``info``."""
    for name in [wanted] if wanted else ENGINES:
        path = shutil.which(name)
        if path and subprocess.run([path, "info"], capture_output=True, timeout=60, check=False).returncode == 0:
            return path
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(command: list[str], *, timeout: float = 120, quiet: bool = True) -> str:
    """Run ``command``; its output when it succeeds, else ImageCheckError with its last lines."""
    result = subprocess.run(command, capture_output=quiet, text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        tail = ((result.stdout or "") + (result.stderr or ""))[-2000:]
        raise ImageCheckError(f"`{shlex.join(command[:4])} ...` exited with {result.returncode}: {tail}")
    return result.stdout or ""


def ensure_repository(repository: Path, workdir: Path) -> None:
    if repository.is_dir():
        return
    print(f"no repository at {repository}: publishing the digits recipe there (a minute or two) ...", flush=True)
    run([sys.executable, "-m", "modelpress", "pipeline", "--recipe", str(ROOT / "recipes" / "digits.yaml"),
         "--repository", str(repository), "--workdir", str(workdir)], timeout=1800, quiet=False)  # fmt: skip


def numeric_model(repository: Path) -> Model:
    """The first model (by name) whose newest version takes only numeric inputs: V1 instances can be numbers."""
    from modelpress.serving.manifest import list_models, list_versions, read_manifest

    for name in list_models(repository):
        versions = list_versions(repository / name)
        if not versions:
            continue
        manifest = read_manifest(repository / name / str(versions[-1]))
        if all(spec.datatype in NUMERIC for spec in manifest.inputs):
            shapes = [(s.name, s.datatype, [1] + [max(d, 1) for d in s.shape[1:]]) for s in manifest.inputs]
            return Model(name, shapes)
    raise ImageCheckError(f"no model with numeric inputs in {repository}")


def post(url: str, body: dict) -> dict:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as e:
        raise ImageCheckError(f"POST {url}: HTTP {e.code}: {e.read()[:500]!r}") from e


def wait_ready(url: str, engine: str, container: str, seconds: float = 180) -> float:
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        try:
            with urllib.request.urlopen(f"{url}/v2/health/ready", timeout=2) as response:
                if response.status == 200:
                    return time.monotonic() - start
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        state = subprocess.run([engine, "inspect", "--format", "{{.State.Running}}", container],
                               capture_output=True, text=True, timeout=30, check=False).stdout.strip()  # fmt: skip
        if state == "false":
            logs = subprocess.run([engine, "logs", container], capture_output=True, text=True, timeout=30).stderr
            raise ImageCheckError(f"the container exited before it was ready: {logs[-2000:]}")
        time.sleep(0.5)
    raise ImageCheckError(f"not ready within {seconds:.0f} s")


def check_inside(engine: str, container: str) -> dict:
    seen = json.loads(run([engine, "exec", container, "python", "-c", PROBE]))
    if seen["uid"] == 0:
        raise ImageCheckError("the server runs as root")
    if not seen["home_exists"]:
        raise ImageCheckError(f"HOME={seen['home']} does not exist")
    if seen["torch"]:
        raise ImageCheckError("torch is importable in the serve image")
    if seen["pip"]:
        raise ImageCheckError("pip is importable in the serve image's environment")
    return seen


def check_requests(url: str, model: Model) -> tuple[list[int], int]:
    """A V2 and a V1 request; the V2 output's shape and the number of V1 predictions."""
    inputs = [{"name": n, "datatype": d, "shape": s, "data": [NUMERIC[d]] * math.prod(s)} for n, d, s in model.inputs]
    v2 = post(f"{url}/v2/models/{model.name}/infer", {"inputs": inputs})
    if not v2.get("outputs") or v2["outputs"][0]["shape"][0] != 1:
        raise ImageCheckError(f"V2 answer without a one-row output: {str(v2)[:300]}")
    _, datatype, shape = model.inputs[0]
    row = [NUMERIC[datatype]] * math.prod(shape[1:])
    v1 = post(f"{url}/v1/models/{model.name}:predict", {"instances": [row]})
    if len(v1.get("predictions", [])) != 1:
        raise ImageCheckError(f"V1 answer without one prediction: {str(v1)[:300]}")
    return v2["outputs"][0]["shape"], len(v1["predictions"])


def stop(engine: str, container: str) -> tuple[float, int]:
    """SIGTERM, then the seconds until the container exited and its exit code."""
    start = time.monotonic()
    run([engine, "kill", "--signal", "TERM", container])
    code = int(run([engine, "wait", container], timeout=60).strip().splitlines()[-1])
    return time.monotonic() - start, code


def check_image(engine: str, build_flags: list[str], repository: Path) -> None:
    started = time.monotonic()
    print(f"building {IMAGE} (target serve) with {engine} ...", flush=True)
    run([engine, "build", *build_flags, "--target", "serve", "-t", IMAGE, str(ROOT)], timeout=3600, quiet=False)
    print(f"built in {time.monotonic() - started:.0f} s", flush=True)
    size = run([engine, "image", "inspect", "--format", "{{.Size}}", IMAGE]).strip()
    print(f"image size: {int(size) / 2**20:.0f} MiB")
    model = numeric_model(repository)
    port = free_port()
    container = f"modelpress-image-check-{os.getpid()}"
    run([engine, "run", "--detach", "--name", container, "--network", "host",
         "-e", "MODELPRESS_HOST=127.0.0.1", "-e", f"MODELPRESS_PORT={port}",
         "-v", f"{repository.resolve()}:/models:ro", IMAGE])  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        print(f"ready after {wait_ready(url, engine, container):.1f} s")
        seen = check_inside(engine, container)
        print(f"user uid {seen['uid']}, HOME {seen['home']} exists, no torch, no pip")
        shape, predictions = check_requests(url, model)
        print(f"V2 infer {model.name}: 200, output shape {shape}; V1 predict: 200, {predictions} prediction")
        seconds, code = stop(engine, container)
        if code not in (0, 143):
            raise ImageCheckError(f"exit code {code} after SIGTERM")
        print(f"SIGTERM: exited with code {code} after {seconds:.1f} s")
        logs = subprocess.run([engine, "logs", container], capture_output=True, text=True, timeout=30, check=False)
        warnings = [line for line in logs.stderr.splitlines() if "warn" in line.lower()]
        print(f"server log: {len(logs.stderr.splitlines())} lines, {len(warnings)} warnings")
        for line in warnings[:5]:
            print(f"  {line}")
    finally:
        subprocess.run([engine, "rm", "--force", container], capture_output=True, timeout=60, check=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repository", type=Path, default=ROOT / "demo-output" / "repository")
    parser.add_argument("--workdir", type=Path, default=ROOT / "demo-output" / "work")
    parser.add_argument("--engine", default=os.environ.get("ENGINE") or None, help="docker or podman")
    parser.add_argument("--build-flags", default=os.environ.get("BUILD_FLAGS", ""), help="extra `build` flags")
    args = parser.parse_args()
    engine = find_engine(args.engine)
    if engine is None:
        tried = args.engine or " or ".join(ENGINES)
        print(f"make image: skipped: no container engine ({tried}) found or answering `info`")
        return 0
    try:
        ensure_repository(args.repository, args.workdir)
        check_image(engine, shlex.split(args.build_flags), args.repository)
    except ImageCheckError as e:
        print(f"make image: FAILED: {e}", file=sys.stderr)
        return 1
    print("make image: every check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
