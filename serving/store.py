"""Where a model repository lives: a local folder, or any fsspec URL (``s3://``, ``gs://``, ``az://``, ``file://``).

One abstraction for both sides of the repository contract: the publisher (``modelpress.export.repository``) writes
through it, the server (``modelpress.serving.repository``) reads through it.

A local folder is published by rename (atomic) and served in place. Object stores have no rename, so there a
version is *complete* only once its ``manifest.json`` exists: a publisher uploads every other file first and the
manifest last, and a reader treats a version folder without a manifest as absent. A server copies a remote
version into a local cache and checks every file's size and sha256 against the manifest before anything loads.

Credentials come from each SDK's own chain (environment, profile, workload identity); ``storage_options`` go to
fsspec as given. Neither is ever logged: messages show the URL without any ``user:password@``.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from modelpress.common.errors import UserError
from modelpress.serving.manifest import (
    MANIFEST_FILE,
    ManifestError,
    list_models,
    list_versions,
    read_manifest,
    verify_files,
)

log = logging.getLogger("modelpress.serving.store")


@dataclass(frozen=True)
class _Protocol:
    """What one URL scheme needs: the extra that installs it, where its credentials and its endpoint come from."""

    extra: str
    credentials: str
    endpoint: str


_S3 = _Protocol(
    "s3",
    "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE, or a workload identity), "
    "and AWS_ENDPOINT_URL for an S3-compatible store",
    "AWS_ENDPOINT_URL / --storage-option endpoint_url=...",
)
_GCS = _Protocol(
    "gcs",
    "set GOOGLE_APPLICATION_CREDENTIALS (or use a workload identity; --storage-option token=anon for an emulator)",
    "STORAGE_EMULATOR_HOST / --storage-option endpoint_url=...",
)
_AZURE = _Protocol(
    "azure",
    "set AZURE_STORAGE_CONNECTION_STRING, or AZURE_STORAGE_ACCOUNT_NAME with AZURE_STORAGE_ACCOUNT_KEY "
    "or a workload identity",
    "the BlobEndpoint of AZURE_STORAGE_CONNECTION_STRING / --storage-option account_host=...",
)
_PROTOCOLS: dict[str, _Protocol] = {
    "s3": _S3,
    "gs": _GCS,
    "gcs": _GCS,
    "az": _AZURE,
    "abfs": _AZURE,
    "memory": _Protocol("", "", ""),
}
# Fail in seconds, not minutes, when the endpoint is unreachable (botocore retries 5 times by default); a
# --storage-option config_kwargs=... replaces it.
_DEFAULT_OPTIONS: dict[str, dict[str, Any]] = {
    "s3": {"config_kwargs": {"connect_timeout": 5, "read_timeout": 60, "retries": {"max_attempts": 3}}},
}
SUPPORTED = "a folder path, file://, s3://, gs:// or az://"


class StoreError(UserError):
    """The repository's store cannot be used: one line naming the problem and what to set."""


@dataclass(frozen=True)
class VersionState:
    """One version folder found in a store: complete once its manifest (the last object written) is there."""

    model: str
    version: int
    complete: bool


@dataclass
class Listing:
    """Every model version folder a store holds, complete or not (one scan)."""

    versions: list[VersionState] = field(default_factory=list)

    def published(self) -> dict[str, list[int]]:
        """Complete versions per model, ascending; models without one are left out."""
        out: dict[str, list[int]] = {}
        for state in sorted(self.versions, key=lambda s: (s.model, s.version)):
            if state.complete:
                out.setdefault(state.model, []).append(state.version)
        return out

    def taken(self, model: str) -> list[int]:
        """Every version number of ``model`` with any object, complete or not (a publisher never reuses one)."""
        return sorted(s.version for s in self.versions if s.model == model)


def display_url(url: str) -> str:
    """``url`` without credentials (``user:password@`` in the netloc), safe to log or print."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]).geturl()


def is_remote(url: str | Path) -> bool:
    """True for a URL with a scheme other than ``file://`` (a Windows drive letter is not a scheme)."""
    scheme = urlsplit(str(url)).scheme
    return len(scheme) > 1 and scheme != "file"


class RepositoryStore(ABC):
    """A model repository's storage, read by the server and written by the publisher."""

    url: str
    remote: bool = False

    def __str__(self) -> str:
        return display_url(self.url)

    @abstractmethod
    def scan(self) -> Listing:
        """List every model version folder (raises StoreError when the store cannot be read)."""

    @abstractmethod
    def fetch(self, model: str, version: int, cache: Path) -> Path:
        """A local folder holding ``model`` v``version`` with every file the manifest lists, sha256-verified.

        Raises:
            ManifestError: the manifest is missing or invalid, or a file is missing, truncated or changed.
            StoreError: the store cannot be read.
        """

    @abstractmethod
    def check_readable(self) -> None:
        """Raise StoreError unless the repository can be listed (the server's start-up check)."""


class LocalStore(RepositoryStore):
    """A folder: published by rename (``modelpress.export.repository``), served in place."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = str(root)

    def scan(self) -> Listing:
        listing = Listing()
        for model in list_models(self.root):
            for version in list_versions(self.root / model):  # journaled (unfinished) runs are left out
                listing.versions.append(VersionState(model, version, complete=True))
        return listing

    def fetch(self, model: str, version: int, cache: Path) -> Path:
        return self.root / model / str(version)  # verified at load, like every version

    def check_readable(self) -> None:
        if not self.root.is_dir():
            raise StoreError(f"model repository {self.root} is not a directory")


class FsspecStore(RepositoryStore):
    """A repository under an fsspec URL; versions appear when their manifest, the last object, is written."""

    remote = True

    def __init__(self, url: str, fs: Any, root: str) -> None:
        self.url = url.rstrip("/")
        self.fs = fs
        self.root = root.rstrip("/")
        self.protocol = urlsplit(url).scheme

    # ---- reading ----------------------------------------------------------------------------------------------
    def _path(self, *parts: str | int) -> str:
        return "/".join([self.root, *(str(p) for p in parts)])

    def _keys(self) -> list[str]:
        """Every object under the root, relative to it: one recursive listing, never a cached one."""
        self.fs.invalidate_cache()
        with self.errors():  # not fs.exists(): it answers False for an unreachable store too
            found = self.fs.find(self.root)  # no maxdepth: s3fs then lists flat (one LIST per 1000 keys), no walk
        prefix = self.root + "/"
        return [key[len(prefix) :] for key in found if key.startswith(prefix)]

    def scan(self) -> Listing:
        folders: dict[tuple[str, int], bool] = {}
        for key in self._keys():
            parts = key.split("/")
            if len(parts) < 3 or parts[0].startswith(".") or not parts[1].isdigit():
                continue
            slot = (parts[0], int(parts[1]))
            folders[slot] = folders.get(slot, False) or (len(parts) == 3 and parts[2] == MANIFEST_FILE)
        return Listing([VersionState(m, v, done) for (m, v), done in sorted(folders.items())])

    def check_readable(self) -> None:
        self.check_location()
        keys = self._keys()
        if keys and not self.scan().published():
            raise StoreError(
                f"{display_url(self.url)} is not a model repository: it holds objects but no "
                f"<model>/<version>/{MANIFEST_FILE}; point --repository at the prefix the pipeline publishes to"
            )

    def check_location(self) -> None:
        """Raise StoreError when the bucket (container) is missing or the credentials cannot list it."""
        bucket = self.root.split("/", 1)[0]
        with self.errors():
            self.fs.invalidate_cache()
            try:
                self.fs.ls(bucket)  # raises what went wrong, where fs.exists() would only say False
            except FileNotFoundError as e:
                # Listing the bucket itself found nothing: the bucket is missing, whatever words the SDK chose
                # (gcsfs says 'b/NAME/o', adlfs 'No such file or directory').
                raise StoreError(_missing_bucket(bucket, display_url(self.url))) from e

    def fetch(self, model: str, version: int, cache: Path) -> Path:
        """Download into ``<cache>/<model>/<version>`` (reused when its manifest is unchanged), verified."""
        target = cache / model / str(version)
        target.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".fetch-{version}-", dir=target.parent))
        try:
            remote = self._path(model, version)
            self._get(f"{remote}/{MANIFEST_FILE}", work / MANIFEST_FILE)
            if _same_file(target / MANIFEST_FILE, work / MANIFEST_FILE) and _verifies(target):
                return target
            manifest = read_manifest(work)
            for rel in manifest.files:
                if rel == MANIFEST_FILE or Path(rel).is_absolute() or ".." in Path(rel).parts:
                    raise ManifestError(f"{display_url(self.url)}/{model}/{version}: bad file name {rel!r}")
                self._get(f"{remote}/{rel}", work / rel)
            try:
                verify_files(manifest, work)  # before the version is visible in the cache, let alone loaded
            except ManifestError as e:  # name the object in the store, not the scratch folder
                shown = display_url(f"{self.protocol}://{remote}")
                raise ManifestError(str(e).replace(str(work), shown)) from e
            self._settle(work, target)
            return target
        finally:
            shutil.rmtree(work, ignore_errors=True)

    @staticmethod
    def _settle(work: Path, target: Path) -> None:
        """Move a verified download into place; another worker process may have put the same version there first."""
        try:
            work.rename(target)  # refused when target is a non-empty folder
            return
        except OSError:
            if _same_file(target / MANIFEST_FILE, work / MANIFEST_FILE) and _verifies(target):
                return  # the same bytes, already in place (and maybe loading): keep them
        stale = target.with_name(f".stale-{target.name}-{uuid.uuid4().hex[:8]}")
        target.rename(stale)
        work.rename(target)
        shutil.rmtree(stale, ignore_errors=True)

    def _get(self, remote: str, local: Path) -> None:
        local.parent.mkdir(parents=True, exist_ok=True)
        try:
            with self.errors():
                self.fs.get_file(remote, str(local))
        except StoreError as e:
            if isinstance(e.__cause__, FileNotFoundError):
                shown = display_url(f"{self.protocol}://{remote}")
                raise ManifestError(f"{shown}: listed in the manifest but missing from the store") from e
            raise

    # ---- writing (the publisher) ---------------------------------------------------------------------------------
    def check_writable(self) -> None:
        """Raise StoreError unless the location exists and, when it holds anything, looks like a repository."""
        self.check_location()
        keys = [k for k in self._keys() if not k.split("/", 1)[0].startswith(".")]
        strays = [k for k in keys if len(k.split("/")) < 3 or not k.split("/")[1].isdigit()]
        if strays:
            raise StoreError(
                f"{display_url(self.url)} is not a model repository: it holds {strays[0]!r}, not "
                f"<model>/<version>/...; publish to an empty prefix or to an existing repository"
            )

    def upload(self, local_dir: Path, model: str, version: int, on_file: Callable[[str], None] | None = None) -> None:
        """Upload every file of a version folder but its manifest (the commit object, see :meth:`commit`)."""
        for path in sorted(p for p in local_dir.rglob("*") if p.is_file() and p.name != MANIFEST_FILE):
            rel = path.relative_to(local_dir).as_posix()
            with self.errors():
                self.fs.put_file(str(path), self._path(model, version, rel))
            if on_file is not None:
                on_file(rel)

    def commit(self, local_dir: Path, model: str, version: int) -> None:
        """Write the manifest, the version's last object: from now on readers see it."""
        target = self._path(model, version, MANIFEST_FILE)
        with self.errors():
            self.fs.invalidate_cache()
            if self.fs.exists(target):
                raise StoreError(f"{model} version {version} already exists in {display_url(self.url)}")
            self.fs.put_file(str(local_dir / MANIFEST_FILE), target)

    def remove(self, model: str, version: int, *, manifest_first: bool = True) -> None:
        """Delete a version: its manifest first, so a reader never sees a complete version losing files."""
        with self.errors():
            if manifest_first:
                manifest = self._path(model, version, MANIFEST_FILE)
                if self.fs.exists(manifest):
                    self.fs.rm_file(manifest)
            prefix = self._path(model, version)
            if self.fs.exists(prefix):
                self.fs.rm(prefix, recursive=True)
            self.fs.invalidate_cache()

    def sweep_incomplete(self) -> list[str]:
        """Delete version folders without a manifest (publishes that died half-way); returns them.

        One publisher per repository at a time: a second one would take the first one's upload for a dead one.
        """
        removed = []
        for state in self.scan().versions:
            if not state.complete:
                self.remove(state.model, state.version, manifest_first=False)
                removed.append(f"{state.model}/{state.version}")
        if removed:
            log.warning("removed incomplete versions left by an interrupted publish: %s", removed)
        return removed

    # ---- errors ------------------------------------------------------------------------------------------------
    def errors(self) -> _StoreErrors:
        return _StoreErrors(self)


class _StoreErrors:
    """Turns what fsspec and the cloud SDKs raise into one StoreError line that says what to set."""

    def __init__(self, store: FsspecStore) -> None:
        self.store = store

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, _tb: Any) -> bool:
        if error is None or isinstance(error, (StoreError, ManifestError)) or not isinstance(error, Exception):
            return False
        raise StoreError(describe_error(error, self.store.url, self.store.root)) from error


def describe_error(error: Exception, url: str, root: str) -> str:
    """One line naming what went wrong with the store of ``url`` and what to set (no credential in it)."""
    shown, scheme = display_url(url), urlsplit(url).scheme
    protocol = _PROTOCOLS.get(scheme, _Protocol(scheme, "check the credentials", "the endpoint"))
    name = type(error).__name__
    text = str(error)
    # The HTTP status where the SDK keeps one: gcsfs's HttpError.code, azure-core's HttpResponseError.status_code.
    status = getattr(error, "status_code", None) or getattr(error, "code", None)
    if (
        "NoCredentials" in name
        or "ClientAuthentication" in name  # azure-identity found no credential in its chain
        or ("credentials" in text.lower() and "unable to locate" in text.lower())
    ):
        return f"no credentials for {shown}: {protocol.credentials}"
    if isinstance(error, PermissionError) or status in (401, 403) or any(word in text for word in _DENIED_WORDS):
        return f"access denied to {shown}: {protocol.credentials}"
    if isinstance(error, FileNotFoundError):
        bucket = root.split("/", 1)[0]
        if (
            "NoSuchBucket" in text
            or "bucket does not exist" in text
            or text.strip("'\" ") in (bucket, f"{scheme}://{bucket}")
        ):
            return _missing_bucket(bucket, shown)
        return f"{shown}: not found ({text})"
    if (
        "Connect" in name
        or "Endpoint" in name
        or "ServiceRequest" in name  # azure-core: the request never got an answer
        or isinstance(error, (ConnectionError, TimeoutError))
    ):
        return f"cannot reach the store of {shown} ({name}): check the network and {protocol.endpoint}"
    return f"{shown}: {name}: {text.splitlines()[0] if text else 'store error'}"


# How S3 and Azure say "refused" in an error's text, when the exception carries no status.
_DENIED_WORDS = ("AccessDenied", "Forbidden", "403", "AuthorizationFailure", "AuthenticationFailed")


def _missing_bucket(bucket: str, shown: str) -> str:
    return f"bucket {bucket!r} does not exist ({shown}): create it, or fix --repository"


def open_store(url: str | Path, storage_options: Mapping[str, Any] | None = None) -> RepositoryStore:
    """The store behind ``url``: a plain path or ``file://`` is a folder, any other scheme goes through fsspec.

    Raises:
        StoreError: an unknown scheme, or a protocol whose extra is not installed (one line, what to install).
    """
    text = str(url)
    parts = urlsplit(text)
    if not is_remote(text):
        return LocalStore(Path(parts.path if parts.scheme == "file" else text))
    scheme = parts.scheme
    protocol = _PROTOCOLS.get(scheme, _Protocol(scheme, "", ""))
    extra = protocol.extra
    try:
        import fsspec
    except ImportError as e:
        raise StoreError(
            f"repository {display_url(text)} needs fsspec and the {scheme}:// filesystem: "
            f"pip install 'modelpress[{extra or 's3'}]'"
        ) from e
    try:
        cls = fsspec.get_filesystem_class(scheme)
    except ValueError as e:
        raise StoreError(f"unknown URL scheme '{scheme}://' in repository {display_url(text)}: use {SUPPORTED}") from e
    except ImportError as e:
        raise StoreError(
            f"repository {display_url(text)} needs the {scheme}:// filesystem: pip install 'modelpress[{extra}]'"
        ) from e
    if scheme not in _PROTOCOLS:
        raise StoreError(f"unsupported URL scheme '{scheme}://' in repository {display_url(text)}: use {SUPPORTED}")
    options = {**_DEFAULT_OPTIONS.get(scheme, {}), **dict(storage_options or {})}
    if protocol is _GCS:
        cls = _gcs_json_api(cls)
        _keep_sdk_errors_to_one_line("gcsfs")
    try:
        # As fsspec.core.url_to_fs builds it (options, then what the URL says), but from the class chosen above, and
        # a fresh filesystem per store: fsspec's instance cache would keep the credentials of an earlier one.
        fs = cls(skip_instance_cache=True, **{**options, **cls._get_kwargs_from_urls(text)})
        root = cls._strip_protocol(text)
    except (TypeError, ValueError) as e:
        if protocol is _AZURE and "connection_string or account_name" in str(e):  # adlfs found nothing to use
            raise StoreError(f"no credentials for {display_url(text)}: {protocol.credentials}") from e
        raise StoreError(f"repository {display_url(text)}: bad storage option: {e}") from e
    if not root.strip("/"):
        raise StoreError(f"repository {display_url(text)} names no bucket: use {scheme}://BUCKET[/PREFIX]")
    return FsspecStore(text, fs, root)


def _gcs_json_api(registered: type) -> type:
    """The filesystem class for ``gs://``: gcsfs's JSON-API ``GCSFileSystem``, which the class it registers extends.

    gcsfs registers ``ExtendedGcsFileSystem``, which first asks the Storage Control API (gRPC) for each bucket's
    layout, to handle zonal buckets. Where that API does not answer (gcp-storage-emulator, for one) the question
    waits out its timeout, 60 s measured here, and is asked again on every call, since an unknown layout is not
    cached. The JSON API reads and writes standard and hierarchical-namespace buckets alike, which is all a model
    repository needs. (Taken from the registered class, not imported: only the [gcs] extra installs gcsfs.)
    """
    for cls in registered.__mro__:
        if cls.__module__ == "gcsfs.core" and cls.__name__ == "GCSFileSystem":
            return cls
    return registered


class _MessageOnly(logging.Filter):
    """Drops the traceback from an SDK's log records, keeping their message.

    The error such a record carries is raised to us too and reaches the user as one line (StoreError), so a
    traceback in the log would only repeat it less clearly.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info = None
        record.exc_text = None
        return True


def _keep_sdk_errors_to_one_line(logger_name: str) -> None:
    """Keep an SDK's logged errors to their message (gcsfs logs ``logger.exception`` before raising them)."""
    logger = logging.getLogger(logger_name)
    if not any(isinstance(f, _MessageOnly) for f in logger.filters):
        logger.addFilter(_MessageOnly())


def parse_storage_options(pairs: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """``["key=value", ...]`` (``--storage-option``) as fsspec keyword arguments.

    A value that reads as JSON (``true``, ``3``, ``{"region_name": "eu-west-1"}``) is passed decoded, anything
    else as the string given.

    Raises:
        StoreError: an item without ``=`` or with an empty key.
    """
    import json

    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise StoreError(
                f"storage option {key.strip() or pair!r}: expected key=value, e.g. endpoint_url=http://..."
            )
        try:
            options[key.strip()] = json.loads(value)
        except ValueError:
            options[key.strip()] = value
    return options


def as_store(
    repository: str | Path | RepositoryStore, storage_options: Mapping[str, Any] | None = None
) -> RepositoryStore:
    """``repository`` itself when it is a store already, else :func:`open_store` of it."""
    return repository if isinstance(repository, RepositoryStore) else open_store(repository, storage_options)


def wait_until_readable(store: RepositoryStore, wait_s: float, *, sleep: Callable[[float], None] | None = None) -> None:
    """``store.check_readable()``, retried with backoff (1, 2, 4 ... 30 s) for up to ``wait_s`` seconds.

    Raises:
        StoreError: the last failure, once ``wait_s`` has passed (at once when it is 0).
    """
    import time

    pause = sleep or time.sleep
    deadline, delay, attempt = time.monotonic() + wait_s, 1.0, 1
    while True:
        try:
            store.check_readable()
            return
        except StoreError as e:
            left = deadline - time.monotonic()
            if left <= 0:
                raise
            log.warning("repository not readable (attempt %d, retrying in %.0f s): %s", attempt, min(delay, left), e)
            pause(min(delay, left))
            delay, attempt = min(delay * 2, 30.0), attempt + 1


def cache_folder(cache_dir: Path, store: RepositoryStore) -> Path:
    """Where one repository's versions are cached: a folder per URL, so two repositories never mix."""
    return cache_dir / hashlib.sha256(display_url(store.url).encode()).hexdigest()[:16]


def _same_file(a: Path, b: Path) -> bool:
    return a.is_file() and b.is_file() and a.read_bytes() == b.read_bytes()


def _verifies(folder: Path) -> bool:
    try:
        verify_files(read_manifest(folder), folder)
    except ManifestError:
        return False
    return True
