"""Publishing into the model repository: staged in a hidden folder inside it, verified, then renamed.

A reader never sees half a version: the version folder appears by one ``rename`` of a complete, verified
folder. The version number is taken at rename time: ``rename`` onto an existing non-empty folder fails,
so two publishers racing for the same number cannot both win; the loser retries with the next one.

A run of several versions is all or nothing, even under ``kill -9``: each version is listed in the run's
journal before its rename, and readers ignore listed versions until the journal is deleted (see
``modelpress.serving.manifest.pending_versions``). The journal is locked while its run lives; the next publish finds a
journal nobody holds, retracts its versions and removes stale staging folders, so the repository is back to
its bytes before the interrupted run.

An object store (``s3://``, ``gs://``, ``az://``) has no rename: there every version is staged and verified in a
local temporary folder, its files are uploaded, and its manifest goes up last, the object that makes it
visible (``modelpress.serving.store``). A failed run deletes what it uploaded; a run killed half-way leaves
version folders without a manifest, which readers ignore and the next publish deletes.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from modelpress.export.errors import ExportError, VerificationError
from modelpress.export.onnx_files import copy_model
from modelpress.export.ort_session import cpu_session
from modelpress.serving.manifest import (
    JOURNAL_PREFIX,
    JOURNAL_SUFFIX,
    ManifestError,
    ModelManifest,
    file_records,
    read_journal,
    read_manifest,
    taken_versions,
    verify_files,
    write_manifest,
)
from modelpress.serving.store import FsspecStore, LocalStore, RepositoryStore, StoreError, as_store, display_url

log = logging.getLogger("modelpress.export.repository")

STAGING_PREFIX = ".staging-"
MAX_VERSION_ATTEMPTS = 100


@dataclass(frozen=True)
class Published:
    name: str
    version: int
    path: Path | str  # a folder, or the version's URL in an object store
    manifest: ModelManifest


# A stage factory builds one staged version inside the folder it is given (the repository, or a local
# temporary folder when the repository is in an object store).
StageFactory = Callable[[Path], "StagedVersion"]


def check_repository(repository: str | Path | RepositoryStore) -> None:
    """Raise ExportError when the repository cannot take a publish (nothing is written).

    A folder: it exists but is not a folder, or cannot be created. A URL: unknown scheme, missing extra, missing
    bucket, no credentials, or a prefix that holds something other than a model repository.
    """
    try:
        store = as_store(repository)
        if isinstance(store, FsspecStore):
            store.check_writable()
            return
    except StoreError as e:
        raise ExportError(str(e)) from e
    if not isinstance(store, LocalStore):
        raise ExportError(f"cannot publish to {store}: neither a folder nor an fsspec URL")
    repository = store.root
    if repository.exists() and not repository.is_dir():
        raise ExportError(f"repository {repository} is a file, expected a folder")
    if not repository.exists() and repository.parent.exists() and not repository.parent.is_dir():
        raise ExportError(f"repository {repository}: parent {repository.parent} is not a folder")


def check_version_free(repository: str | Path | RepositoryStore, name: str, version: int | None) -> None:
    """Raise ExportError when an explicitly requested version already exists (never overwritten)."""
    if version is None:
        return
    store = as_store(repository)
    if isinstance(store, FsspecStore):
        try:
            taken = version in store.scan().taken(name)
        except StoreError as e:
            raise ExportError(str(e)) from e
    else:
        taken = (store.root / name / str(version)).exists()
    if taken:
        raise ExportError(f"{name} version {version} already exists in {store}; versions are never overwritten")


class StagedVersion:
    """A complete version folder waiting, hidden, inside ``<repository>/<name>/``."""

    def __init__(self, repository: Path, manifest: ModelManifest, model_path: Path, extra_files: Sequence[Path] = ()):
        self.repository = repository
        self.model_dir = repository / manifest.name
        self.model_dir.mkdir(parents=True, exist_ok=True)
        self.path = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=self.model_dir))
        # mkdtemp makes the folder private (0700); a server running as another user must be able to read it.
        self.path.chmod(0o755 & ~_umask())
        self.manifest = manifest
        copy_model(model_path, self.path)
        for path in extra_files:  # e.g. tokenizer.json: hashed into the manifest with the model
            shutil.copy2(path, self.path / path.name)
        self._write_manifest()

    def _write_manifest(self) -> None:
        self.manifest = self.manifest.model_copy(update={"files": file_records(self.path)})
        write_manifest(self.manifest, self.path)

    def verify(self) -> None:
        """Re-read the staged manifest, check every file's hash, and load the model with ONNX Runtime."""
        try:
            manifest = read_manifest(self.path)
            verify_files(manifest, self.path)
            cpu_session(self.path / manifest.model_file, threads=1)
        except ManifestError as e:
            raise VerificationError(f"staged {self.manifest.name}: {e}") from e
        except Exception as e:  # onnxruntime's load errors
            raise VerificationError(f"staged {self.manifest.name}: ONNX Runtime cannot load it: {e}") from e

    def commit(self, version: int | None = None, *, journal: PublishJournal | None = None) -> Published:
        """Rename into the next free version (or exactly ``version``) and return where it landed.

        With a ``journal``, each target is listed in it before the rename, so it stays unpublished until the
        run finishes.
        """
        number = version or (max(taken_versions(self.model_dir), default=0) + 1)
        for _ in range(MAX_VERSION_ATTEMPTS):
            if number != self.manifest.version:
                self.manifest = self.manifest.model_copy(update={"version": number})
                write_manifest(self.manifest, self.path)
            target = self.model_dir / str(number)
            if journal is not None:
                journal.intend(self.manifest.name, number)
            try:
                if target.exists():  # rename() would replace an empty folder; a version number is never reused
                    raise FileExistsError(errno.EEXIST, "version exists", str(target))
                os.rename(self.path, target)
            except OSError as e:
                if e.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                    raise
                if version is not None:
                    raise ExportError(
                        f"{self.manifest.name} version {version} already exists; versions are never overwritten"
                    ) from e
                number = max([number, *taken_versions(self.model_dir)]) + 1
                continue
            self.path = target
            return Published(self.manifest.name, number, target, self.manifest)
        raise ExportError(f"{self.model_dir}: no free version number after {MAX_VERSION_ATTEMPTS} attempts")

    def discard(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        _remove_if_empty(self.model_dir)


def retract(published: Published) -> None:
    """Undo a commit of this run (a later variant failed): hide the folder first, then delete it."""
    _retract_folder(published.path)


def _retract_folder(path: Path) -> None:
    hidden = path.with_name(f"{STAGING_PREFIX}retract-{path.name}-{uuid.uuid4().hex[:8]}")
    os.rename(path, hidden)
    shutil.rmtree(hidden, ignore_errors=True)
    _remove_if_empty(path.parent)


class PublishJournal:
    """The versions one run is renaming into place; held locked (``flock``) while the run lives.

    The kernel drops the lock when the process dies, even by SIGKILL: a journal nobody holds belongs to a dead
    run. ``flock``, not ``lockf``: a POSIX lock is released when the process closes *any* descriptor of the
    file, and readers in the same process (``list_versions``) open and close the journal.
    """

    def __init__(self, repository: Path) -> None:
        self.path = repository / f"{JOURNAL_PREFIX}{uuid.uuid4().hex}{JOURNAL_SUFFIX}"
        self._fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_APPEND, 0o644)
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def intend(self, name: str, version: int) -> None:
        """List ``name`` v``version`` durably before it is renamed into place."""
        os.write(self._fd, (json.dumps({"name": name, "version": version}) + "\n").encode())
        os.fsync(self._fd)

    def finish(self) -> None:
        """The commit point: once the journal is gone, every version it listed is published."""
        if self._fd < 0:
            return
        self.path.unlink(missing_ok=True)
        os.close(self._fd)
        self._fd = -1


def recover_interrupted(repository: Path, *, own: PublishJournal | None = None) -> list[Path]:
    """Roll back publish runs that died half-way; returns the version folders removed.

    A journal whose lock can be taken belongs to a dead run: its versions are retracted, then the journal is
    deleted. Staging folders are swept only when no other run is alive (a live run's staging looks the same).
    """
    removed: list[Path] = []
    alive = False
    for journal in sorted(repository.glob(f"{JOURNAL_PREFIX}*{JOURNAL_SUFFIX}")):
        if own is not None and journal == own.path:
            continue
        try:
            fd = os.open(journal, os.O_RDWR)
        except FileNotFoundError:  # finished meanwhile
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                alive = True
                continue
            for name, version in sorted(read_journal(journal), reverse=True):
                folder = repository / name / str(version)
                if folder.is_dir():
                    _retract_folder(folder)
                    removed.append(folder)
            journal.unlink()
            log.warning("rolled back an interrupted publish run: %s", [str(p) for p in removed] or "nothing committed")
        finally:
            os.close(fd)
    if not alive:
        for stale in repository.glob(f"*/{STAGING_PREFIX}*"):
            shutil.rmtree(stale, ignore_errors=True)
            _remove_if_empty(stale.parent)
    return removed


def commit_all(
    repository: str | Path | RepositoryStore,
    stages: Sequence[StageFactory],
    *,
    version: int | None = None,
    on_file: Callable[[str], None] | None = None,
) -> list[Published]:
    """Stage and verify every version, then commit them; on any failure nothing of this run stays published.

    Args:
        repository: the model repository (a folder, created if missing, or a URL / store).
        stages: one factory per model version; each builds its staged folder in the folder it is given.
        version: the version number to publish under, or None for each model's next free number.
        on_file: called with ``<model>/<version>/<file>`` after each object is uploaded (object stores only).
    """
    try:
        store = as_store(repository)
    except StoreError as e:
        raise ExportError(str(e)) from e
    if isinstance(store, FsspecStore):
        try:
            return _commit_to_store(store, stages, version, on_file)
        except StoreError as e:
            raise ExportError(f"publishing to {store} failed: {e}") from e
    if not isinstance(store, LocalStore):
        raise ExportError(f"cannot publish to {store}: neither a folder nor an fsspec URL")
    repository = store.root
    repository.mkdir(parents=True, exist_ok=True)
    journal = PublishJournal(repository)  # taken before staging, so a later run can tell our staging is alive
    recover_interrupted(repository, own=journal)
    staged: list[StagedVersion] = []
    published: list[Published] = []
    try:
        for make_stage in stages:
            staged.append(make_stage(repository))
            staged[-1].verify()
        for stage in staged:
            published.append(stage.commit(version, journal=journal))
        journal.finish()
    except BaseException:
        for done in reversed(published):
            retract(done)
        for stage in staged:
            if stage.path.name.startswith("."):
                stage.discard()
        journal.finish()
        raise
    return published


def _commit_to_store(
    store: FsspecStore, stages: Sequence[StageFactory], version: int | None, on_file: Callable[[str], None] | None
) -> list[Published]:
    """Stage and verify locally, upload every version's files, then every manifest; undo all on failure."""
    store.check_writable()
    store.sweep_incomplete()
    with tempfile.TemporaryDirectory(prefix="modelpress-publish-") as tmp:
        staged = []
        for make_stage in stages:
            staged.append(make_stage(Path(tmp)))
            staged[-1].verify()
        listing = store.scan()
        planned: dict[str, list[int]] = {}
        for stage in staged:
            name = stage.manifest.name
            taken = listing.taken(name) + planned.get(name, [])
            if version is not None and version in taken:
                raise ExportError(f"{name} version {version} already exists in {store}; versions are never overwritten")
            number = version or max(taken, default=0) + 1
            planned.setdefault(name, []).append(number)
            stage.manifest = stage.manifest.model_copy(update={"version": number})
            write_manifest(stage.manifest, stage.path)
        uploaded: list[StagedVersion] = []
        try:
            for stage in staged:  # every file of every version first ...
                uploaded.append(stage)
                name, number = stage.manifest.name, stage.manifest.version
                store.upload(
                    stage.path, name, number, on_file and (lambda rel, p=f"{name}/{number}": on_file(f"{p}/{rel}"))
                )
            for stage in staged:  # ... then the manifests, the objects that make the versions visible
                store.commit(stage.path, stage.manifest.name, stage.manifest.version)
                log.info("published %s v%s to %s", stage.manifest.name, stage.manifest.version, store)
        except BaseException:
            for stage in reversed(uploaded):
                with contextlib.suppress(StoreError):
                    store.remove(stage.manifest.name, stage.manifest.version)
            raise
        return [
            Published(
                s.manifest.name,
                s.manifest.version,
                f"{display_url(store.url)}/{s.manifest.name}/{s.manifest.version}",
                s.manifest,
            )
            for s in staged
        ]


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def _remove_if_empty(folder: Path) -> None:
    # not empty (other versions or another publisher's staging): keep it
    with contextlib.suppress(OSError):
        folder.rmdir()
