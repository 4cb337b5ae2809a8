"""Real object-store API servers for tests, each on a free 127.0.0.1 port, all started and probed the same way.

- ``s3://``: moto's standalone server (what s3fs tests against);
- ``gs://``: gcp-storage-emulator (the GCS JSON API, in memory);
- ``az://``: Azurite's blob service (the official Azure Storage emulator, an npm package; ``make tools`` installs
  it next to the virtualenv's Python).

A :class:`StoreServer` says what a client needs to use it (environment variables and storage options) and gives
the test its own filesystem on it, to create buckets and to read, write or tamper with objects behind the code's
back.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from modelpress.benchmarks.processes import free_port

# moto accepts any key pair; these only have to be present (the SDK's chain finds them in the environment).
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
# Azurite's well-known development account (published in Azurite's documentation; it opens nothing else).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
NO_AZURITE = "Azurite not installed (make tools installs it with npm; npm was not found or could not install it)"


@dataclass
class StoreServer:
    """One running emulator: ``scheme`` is the URL scheme it serves, ``endpoint`` its base URL."""

    scheme: str
    endpoint: str
    proc: subprocess.Popen
    variables: dict[str, str] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    """Storage options modelpress needs besides the environment (gcsfs: anonymous credentials, as its tests use)."""

    def env(self) -> dict[str, str]:
        """What a client needs in its environment to use this server (each SDK's standard variables)."""
        return dict(self.variables)

    def cli_options(self) -> list[str]:
        """:attr:`options` as ``--storage-option key=value`` arguments of the CLI."""
        return [arg for key, value in self.options.items() for arg in ("--storage-option", f"{key}={value}")]

    def url(self, bucket: str, prefix: str = "repo") -> str:
        return f"{self.scheme}://{bucket}/{prefix}"

    def fs(self) -> Any:
        """A fresh fsspec filesystem on this server for the test's own checks (no listing cache)."""
        return _FILESYSTEMS[self.scheme](self)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


def _s3fs(server: StoreServer) -> Any:
    import s3fs

    return s3fs.S3FileSystem(
        key=CREDENTIALS["AWS_ACCESS_KEY_ID"], secret=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        endpoint_url=server.endpoint, skip_instance_cache=True, use_listings_cache=False,
    )  # fmt: skip


def _gcsfs(server: StoreServer) -> Any:
    from gcsfs.core import GCSFileSystem

    return GCSFileSystem(token="anon", endpoint_url=server.endpoint, project="modelpress-tests",
                         skip_instance_cache=True, use_listings_cache=False)  # fmt: skip


def _adlfs(server: StoreServer) -> Any:
    import adlfs

    return adlfs.AzureBlobFileSystem(connection_string=server.variables["AZURE_STORAGE_CONNECTION_STRING"],
                                     skip_instance_cache=True, use_listings_cache=False)  # fmt: skip


_FILESYSTEMS: dict[str, Callable[[StoreServer], Any]] = {"s3": _s3fs, "gs": _gcsfs, "az": _adlfs}


@contextmanager
def _serving(name: str, command: list[str], probe: str, start_s: float, **server: Any) -> Iterator[StoreServer]:
    """Start ``command``, wait until ``probe`` answers with any HTTP status, yield the server, kill it after the block.

    ``server`` holds the :class:`StoreServer` fields but its process.
    """
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    running = StoreServer(proc=proc, **server)
    try:
        deadline = time.monotonic() + start_s
        while True:
            try:
                httpx.get(probe, timeout=1)
                break
            except httpx.HTTPError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"{name} did not start ({' '.join(command)})") from None
                time.sleep(0.1)
        yield running
    finally:
        running.stop()


@contextmanager
def moto_server(port: int | None = None, *, start_s: float = 30) -> Iterator[StoreServer]:
    """moto's S3 API server (``python -m moto.server``)."""
    port = port or free_port()
    endpoint = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    with _serving("moto's S3 server", command, f"{endpoint}/moto-api/", start_s, scheme="s3", endpoint=endpoint,
                  variables={**CREDENTIALS, "AWS_ENDPOINT_URL": endpoint}) as server:  # fmt: skip
        yield server


@contextmanager
def gcs_emulator(port: int | None = None, *, start_s: float = 30) -> Iterator[StoreServer]:
    """gcp-storage-emulator in memory; gcsfs finds it through ``STORAGE_EMULATOR_HOST``."""
    port = port or free_port()
    endpoint = f"http://127.0.0.1:{port}"
    command = [
        _script("gcp-storage-emulator"),
        "start",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--in-memory",
        "-q",
    ]
    with _serving("gcp-storage-emulator", command, f"{endpoint}/storage/v1/b", start_s, scheme="gs",
                  endpoint=endpoint, variables={"STORAGE_EMULATOR_HOST": endpoint},
                  options={"token": "anon"}) as server:  # fmt: skip
        yield server


def azurite_command() -> str | None:
    """Azurite's blob service: beside this Python (``make tools``) or on PATH; None when it is not installed."""
    return shutil.which("azurite-blob", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")


@contextmanager
def azurite(port: int | None = None, *, start_s: float = 60) -> Iterator[StoreServer]:
    """Azurite's blob service in memory, reached with the development account's connection string."""
    program = azurite_command()
    if program is None:
        raise AssertionError(NO_AZURITE)
    port = port or free_port()
    endpoint = f"http://127.0.0.1:{port}/{AZURITE_ACCOUNT}"
    connection = (
        f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};BlobEndpoint={endpoint};"
    )
    # No telemetry (no network here); any API version, so a newer azure-storage-blob than this Azurite still talks.
    command = [program, "--blobHost", "127.0.0.1", "--blobPort", str(port), "--inMemoryPersistence",
               "--disableTelemetry", "--skipApiVersionCheck", "--silent"]  # fmt: skip
    with _serving("Azurite", command, endpoint, start_s, scheme="az", endpoint=endpoint,
                  variables={"AZURE_STORAGE_CONNECTION_STRING": connection}) as server:  # fmt: skip
        yield server


def _script(name: str) -> str:
    """A console script installed beside this Python (the virtualenv's bin folder)."""
    return str(Path(sys.executable).parent / name)


def new_bucket(server: StoreServer) -> str:
    """A fresh bucket (container) per test, so tests never see each other's objects."""
    name = f"mp-{uuid.uuid4().hex[:12]}"
    server.fs().mkdir(name)
    return name


def objects(server: StoreServer, bucket: str) -> dict[str, int]:
    """Every object of ``bucket`` with its size (what a test compares before and after)."""
    fs = server.fs()
    return {key: fs.info(key)["size"] for key in fs.find(bucket)}


def put_bytes(server: StoreServer, key: str, data: bytes) -> None:
    server.fs().pipe_file(key, data)


def get_bytes(server: StoreServer, key: str) -> bytes:
    return server.fs().cat_file(key)


def upload_folder(server: StoreServer, local: Path, prefix: str) -> None:
    """Copy a local folder to ``prefix`` as is (a test building a repository by hand, not the publisher)."""
    fs = server.fs()
    for path in sorted(local.rglob("*")):
        if path.is_file():
            fs.put_file(str(path), f"{prefix}/{path.relative_to(local).as_posix()}")
