"""A real S3 API server for tests: moto's standalone server (what s3fs tests against) on a free 127.0.0.1 port."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from modelpress.benchmarks.processes import free_port

# moto accepts any key pair; these only have to be present (the SDK's chain finds them in the environment).
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@dataclass
class S3Server:
    endpoint: str
    proc: subprocess.Popen

    def env(self) -> dict[str, str]:
        """What a client needs in its environment to use this server (the standard AWS variables)."""
        return {**CREDENTIALS, "AWS_ENDPOINT_URL": self.endpoint}

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@contextmanager
def moto_server(port: int | None = None, *, start_s: float = 30) -> Iterator[S3Server]:
    """Start ``python -m moto.server`` on 127.0.0.1 and wait until it answers; kill it after the block."""
    port = port or free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = S3Server(f"http://127.0.0.1:{port}", proc)
    try:
        deadline = time.monotonic() + start_s
        while True:
            try:
                httpx.get(f"{server.endpoint}/moto-api/", timeout=1)
                break
            except httpx.HTTPError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError("moto's S3 server did not start") from None
                time.sleep(0.1)
        yield server
    finally:
        server.stop()


def s3fs_for(server: S3Server):
    """An s3fs filesystem on ``server`` for the test's own checks (a fresh instance, no listing cache)."""
    import s3fs

    return s3fs.S3FileSystem(
        key=CREDENTIALS["AWS_ACCESS_KEY_ID"], secret=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        endpoint_url=server.endpoint, skip_instance_cache=True, use_listings_cache=False,
    )  # fmt: skip


def new_bucket(server: S3Server) -> str:
    """A fresh bucket per test, so tests never see each other's objects."""
    name = f"mp-{uuid.uuid4().hex[:12]}"
    s3fs_for(server).mkdir(name)
    return name


def objects(server: S3Server, bucket: str) -> dict[str, int]:
    """Every object of ``bucket`` with its size (what a test compares before and after)."""
    fs = s3fs_for(server)
    return {key: fs.info(key)["size"] for key in fs.find(bucket)}


def put_bytes(server: S3Server, key: str, data: bytes) -> None:
    s3fs_for(server).pipe_file(key, data)


def get_bytes(server: S3Server, key: str) -> bytes:
    return s3fs_for(server).cat_file(key)


def upload_folder(server: S3Server, local: Path, prefix: str) -> None:
    """Copy a local folder to ``prefix`` as is (a test building a repository by hand, not the publisher)."""
    fs = s3fs_for(server)
    for path in sorted(local.rglob("*")):
        if path.is_file():
            fs.put_file(str(path), f"{prefix}/{path.relative_to(local).as_posix()}")
