"""A throw-away PostgreSQL server on 127.0.0.1 for the shared-study tests (Debian's ``postgresql`` package).

``initdb`` and ``postgres`` refuse to run as root: as root the server runs as the ``postgres`` user the package
creates, through ``runuser``. Password authentication over TCP (scram-sha-256), so wrong credentials fail.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

USER = "modelpress"
PASSWORD = "tune-secret"


@dataclass
class PostgresServer:
    port: int
    root: Path

    def url(self, database: str, *, password: str = PASSWORD, driver: str = "psycopg2") -> str:
        return f"postgresql+{driver}://{USER}:{password}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A new empty database; returns its SQLAlchemy URL."""
        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user=USER, password=PASSWORD, dbname="postgres")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        conn.close()
        return self.url(name)


def bin_dir() -> Path | None:
    """The newest installed PostgreSQL's bin folder (Debian keeps initdb and pg_ctl off PATH)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def why_not() -> str | None:
    """Why no server can be started here, or None when one can."""
    if bin_dir() is None:
        return "PostgreSQL is not installed (make tools installs Debian's postgresql package)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no 'postgres' user to run the server as"
        if shutil.which("runuser") is None:
            return "running as root without runuser to drop to the 'postgres' user"
    try:
        import psycopg2  # noqa: F401
    except ModuleNotFoundError:
        return "psycopg2 is not installed (pip install 'modelpress[postgres]')"
    return None


def _as_server_user(args: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start() -> PostgresServer:
    """initdb a temporary folder and start a server on a free loopback port (fsync off: a test database)."""
    binaries = bin_dir()
    assert binaries is not None
    # not under pytest's tmp folders: their parents are private to root, and the server runs as 'postgres'
    root = Path(tempfile.mkdtemp(prefix="modelpress-pg-"))
    pwfile = root / "pw"
    pwfile.write_text(PASSWORD + "\n")
    if os.geteuid() == 0:
        server_user = pwd.getpwnam("postgres")
        for path in (root, pwfile):
            os.chown(path, server_user.pw_uid, server_user.pw_gid)
    data = root / "data"
    subprocess.run(
        _as_server_user(
            [
                str(binaries / "initdb"),
                "-D",
                str(data),
                "-U",
                USER,
                f"--pwfile={pwfile}",
                "--auth-host=scram-sha-256",
                "--auth-local=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ]
        ),
        check=True,
        capture_output=True,
        timeout=120,
    )
    port = _free_port()
    options = (
        f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c fsync=off -c max_connections=60"
    )
    subprocess.run(
        _as_server_user(
            [
                str(binaries / "pg_ctl"),
                "-D",
                str(data),
                "-o",
                options,
                "-l",
                str(root / "log"),
                "-w",
                "-t",
                "60",
                "start",
            ]
        ),
        check=True,
        capture_output=True,
        timeout=90,
    )
    return PostgresServer(port, root)


def stop(server: PostgresServer) -> None:
    binaries = bin_dir()
    assert binaries is not None
    subprocess.run(
        _as_server_user([str(binaries / "pg_ctl"), "-D", str(server.root / "data"), "-m", "immediate", "-w", "stop"]),
        capture_output=True,
        timeout=60,
        check=False,
    )
    shutil.rmtree(server.root, ignore_errors=True)
