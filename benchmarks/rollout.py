"""Live rollout from object storage, measured against moto's S3 server on 127.0.0.1 (loopback only, bounded).

1. rollout: a server polls ``s3://`` every ``--poll-interval`` seconds; ``--rollouts`` times a new version of
   ``--model`` is published (files, then the manifest) and a client asks for the model without a version until
   the answer comes from the new one. The figure is the time from the publish call's return (the manifest is
   in the store) to that first answer: a poll's wait, the download, the sha256 check, the load and warm-up.
2. idle: ``--idle-models`` models in the bucket, nothing changes; the server's CPU seconds (``/proc/<pid>/stat``)
   over ``--idle-seconds``, with polling at each ``--idle-intervals`` value and with polling off, alternating,
   reported per minute.

``python -m modelpress.benchmarks.rollout --model REPO/digits/1`` (a published version folder to copy from).
Needs the ``dev`` extra (moto's server) and ``s3`` (s3fs). Prints progress and a summary; ``--out`` writes JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np

from modelpress.benchmarks.processes import free_port, python_module, running_server

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}


@contextlib.contextmanager
def moto(port: int) -> Iterator[str]:
    """Moto's S3 server on 127.0.0.1:``port``; yields its endpoint URL."""
    proc = subprocess.Popen(python_module("moto.server", "-H", "127.0.0.1", "-p", str(port)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(httpx.HTTPError):
                httpx.get(f"{endpoint}/moto-api/", timeout=1)
                break
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("moto's S3 server did not start")
            time.sleep(0.1)
        yield endpoint
    finally:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def environment(env: dict[str, str]) -> Iterator[None]:
    """``env`` in this process's environment for the block (this process publishes too), then as it was."""
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def publish(url: str, source: Path, names: list[str]) -> None:
    """Publish ``source`` (a version folder) under each of ``names`` as their next versions, in one run."""
    from modelpress.export.repository import StagedVersion, commit_all
    from modelpress.serving.manifest import read_manifest

    manifest = read_manifest(source)
    stages = [functools.partial(StagedVersion, manifest=manifest.model_copy(update={"name": name}),
                                model_path=source / manifest.model_file) for name in names]  # fmt: skip
    commit_all(url, stages)


def infer_body(source: Path) -> dict:
    from modelpress.serving.manifest import read_manifest

    spec = read_manifest(source).inputs[0]
    shape = [1 if d == -1 else d for d in spec.shape]
    data = np.zeros(shape, dtype=np.float32).ravel().tolist()
    return {"inputs": [{"name": spec.name, "shape": shape, "datatype": spec.datatype, "data": data}]}


def serve(url: str, interval: float, cache: Path, env: dict[str, str]):
    port = free_port()
    argv = python_module("modelpress", "serve", "--repository", url, "--port", str(port), "--poll-interval",
                         str(interval), "--cache-dir", str(cache), "--log-level", "warning")  # fmt: skip
    return port, running_server(argv, port, env=env, timeout=120)


def rollouts(url: str, source: Path, args: argparse.Namespace, env: dict[str, str], work: Path) -> list[float]:
    name = "rollout"
    publish(url, source, [name])
    body = infer_body(source)
    port, server = serve(url, args.poll_interval, work / "cache-rollout", env)
    seconds = []
    with server, httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
        for i in range(args.rollouts):
            want = str(i + 2)
            publish(url, source, [name])
            published = time.monotonic()
            deadline = published + 10 * args.poll_interval + 30
            while time.monotonic() < deadline:
                r = client.post(f"/v2/models/{name}/infer", json=body)
                r.raise_for_status()
                if r.json()["model_version"] == want:
                    break
            else:
                raise RuntimeError(f"v{want} not served within {deadline - published:.0f} s")
            seconds.append(time.monotonic() - published)
            print(f"rollout {i + 1}/{args.rollouts}: v{want} first served {seconds[-1]:.3f} s after publish",
                  flush=True)  # fmt: skip
    return seconds


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def idle_cpu(url: str, source: Path, args: argparse.Namespace, env: dict[str, str], work: Path) -> dict[str, list]:
    publish(url, source, [f"idle-{i:02d}" for i in range(args.idle_models)])
    results: dict[str, list[float]] = {}
    configs = [0.0, *args.idle_intervals]
    for rnd in range(args.idle_rounds):
        for interval in configs:  # alternating: every configuration once per round
            _, server = serve(url, interval, work / f"cache-idle-{interval}", env)
            with server as proc:
                time.sleep(2)  # past the start-up
                before = cpu_seconds(proc.pid)
                time.sleep(args.idle_seconds)
                per_minute = (cpu_seconds(proc.pid) - before) * 60 / args.idle_seconds
            key = "off" if interval == 0 else f"{interval:g}s"
            results.setdefault(key, []).append(per_minute)
            print(f"idle round {rnd + 1}/{args.idle_rounds}, polling {key}: {per_minute:.3f} CPU s/min", flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="A published version folder to publish again.")
    parser.add_argument("--rollouts", type=int, default=10)
    parser.add_argument("--poll-interval", type=float, default=1.0)
    parser.add_argument("--idle-models", type=int, default=15)
    parser.add_argument("--idle-seconds", type=float, default=60.0)
    parser.add_argument("--idle-intervals", type=float, nargs="+", default=[1.0, 10.0])
    parser.add_argument("--idle-rounds", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    port = free_port()
    env = {**CREDENTIALS, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}
    with moto(port), environment(env), tempfile.TemporaryDirectory(prefix="modelpress-rollout-") as tmp:
        import s3fs

        bucket = f"bench-{uuid.uuid4().hex[:8]}"
        s3fs.S3FileSystem(skip_instance_cache=True).mkdir(bucket)
        seconds = rollouts(f"s3://{bucket}/rollout", args.model, args, env, Path(tmp))
        idle = idle_cpu(f"s3://{bucket}/idle", args.model, args, env, Path(tmp))
    summary = {
        "rollout_seconds": seconds,
        "rollout_p50_s": statistics.median(seconds),
        "poll_interval_s": args.poll_interval,
        "idle_cpu_seconds_per_minute": idle,
        "idle_models": args.idle_models,
    }
    print(
        f"publish -> first answer from the new version: p50 {summary['rollout_p50_s']:.3f} s "
        f"(min {min(seconds):.3f}, max {max(seconds):.3f}, n={len(seconds)}, poll every {args.poll_interval:g} s)"
    )
    for key, values in idle.items():
        print(f"idle, {args.idle_models} models, polling {key}: {statistics.median(values):.3f} CPU s/min "
              f"(rounds: {', '.join(f'{v:.3f}' for v in values)})")  # fmt: skip
    if args.out:
        args.out.write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
