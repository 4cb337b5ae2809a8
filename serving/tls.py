"""TLS files (certificate chain, key, optional client CA) and their reload when they change on disk.

cert-manager, or a rotated Kubernetes Secret, replaces the files under a running server; new connections
must get the new certificate without a restart. A change is noticed by the files' stamps (inode, mtime, size):
REST and gRPC each check every ``tls_reload_s`` seconds (:class:`ContextReloader`, one per server's context). A
half-written rotation (a key that does not match the certificate yet) keeps the previous certificate and is tried
again at the next check.
"""

from __future__ import annotations

import logging
import os
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

from modelpress.serving.settings import Settings

log = logging.getLogger("serving")

Stamp = tuple[tuple[int, int, int], ...]


@dataclass(frozen=True)
class TlsFiles:
    cert: Path
    key: Path
    client_ca: Path | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> TlsFiles | None:
        """None when TLS is off."""
        if settings.tls_cert is None or settings.tls_key is None:
            return None
        return cls(settings.tls_cert, settings.tls_key, settings.tls_client_ca)

    def paths(self) -> tuple[Path, ...]:
        return (self.cert, self.key) + ((self.client_ca,) if self.client_ca is not None else ())

    def stamp(self) -> Stamp:
        """What changes when any file is replaced (a Secret's atomic symlink swap changes the inode).

        Raises:
            OSError: a file is missing or unreadable.
        """
        stats = [os.stat(p) for p in self.paths()]
        return tuple((s.st_ino, s.st_mtime_ns, s.st_size) for s in stats)

    def check_readable(self) -> None:
        """Fail fast at start with a message naming the file (``ServeError`` in ``serving/server.py``)."""
        for path in self.paths():
            if not path.is_file():
                raise FileNotFoundError(f"TLS file {path} does not exist")
        self.server_context()

    def server_context(self, alpn: tuple[str, ...] = ()) -> ssl.SSLContext:
        """A server context holding the files; with a client CA, client certificates are required (mutual TLS).

        Raises:
            OSError, ssl.SSLError: a file is missing or does not load (a key that does not match, say).
        """
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        if self.client_ca is not None:
            context.load_verify_locations(self.client_ca)
            context.verify_mode = ssl.CERT_REQUIRED
        if alpn:
            context.set_alpn_protocols(list(alpn))
        return context


class ContextReloader:
    """Loads the files again into a live ``SSLContext`` when they change; new handshakes use them.

    Args:
        context: the server's context (uvicorn's ``Config.ssl``).
        files: where its certificate, key and client CA come from.
        interval_s: seconds between checks, on a daemon thread started by :meth:`start`.
    """

    def __init__(self, context: ssl.SSLContext, files: TlsFiles, interval_s: float) -> None:
        self.context = context
        self.files = files
        self.interval_s = interval_s
        self._stamp = files.stamp()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check(self) -> bool:
        """Reload when a file changed; True when the context now holds new files."""
        try:
            stamp = self.files.stamp()
            if stamp == self._stamp:
                return False
            self.context.load_cert_chain(self.files.cert, self.files.key)
            if self.files.client_ca is not None:
                # Adds the CA to those trusted (OpenSSL cannot forget one): a rotated CA is trusted beside the old.
                self.context.load_verify_locations(self.files.client_ca)
        except (OSError, ssl.SSLError) as e:
            log.warning("TLS files changed but cannot be loaded (%s); keeping the previous certificate", e)
            return False
        self._stamp = stamp
        log.info("TLS certificate reloaded from %s", self.files.cert)
        return True

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="modelpress-tls-reload", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.check()
