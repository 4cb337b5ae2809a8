"""The Optuna study that several ``modelpress tune`` workers share.

Workers started at the same moment on a fresh database race to create the storage's tables and the study. Here
they open the storage with retries (jittered backoff on "already exists" errors and on a server that is not up
yet, within a bounded wait), create the study once and join it everywhere, hand out the trial budget under a lock
held in the storage itself, and let exactly one worker write the results.

``--trials`` is the size of the whole study: a worker starts a trial only while the study holds fewer trials
(in any state: complete, pruned, failed, running). The check and the creation of the trial happen under one lock
(a PostgreSQL advisory lock, or a file lock beside a SQLite file), so N workers end with exactly that many trials.
"""

from __future__ import annotations

import fcntl
import hashlib
import itertools
import json
import os
import random
import socket
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from modelpress.common.errors import UserError

METRIC_ATTR = "modelpress.metric"
RESULTS_ATTR = "modelpress.results"
WORKER_ATTR = "worker"

# A driver module missing for a storage URL: what it is, and how to install it.
DRIVERS = {
    "psycopg2": ("the PostgreSQL driver psycopg2", "pip install 'modelpress[postgres]'"),
    "psycopg": ("the PostgreSQL driver psycopg (3)", "pip install 'psycopg[binary]', or use postgresql+psycopg2://"),
    "pymysql": ("the MySQL driver PyMySQL", "pip install pymysql"),
    "MySQLdb": ("the MySQL driver mysqlclient", "pip install mysqlclient"),
}
# Error texts of a server that may answer later (not up yet, restarting, a schema another worker is creating).
TRANSIENT = (
    "connection refused",
    "could not connect",
    "could not translate host name",
    "name or service not known",
    "temporary failure in name resolution",
    "no route to host",
    "timeout expired",
    "timed out",
    "the database system is starting up",
    "the database system is shutting down",
    "server closed the connection",
    "too many connections",
    "already exists",
    "duplicate key",
    "unique constraint",
    "database is locked",
)
# Error texts that no wait will cure: (every marker of it, what it means).
FATAL = (
    (("authentication failed",), "wrong credentials"),
    (("no password supplied",), "wrong credentials (no password given)"),
    (("access denied",), "wrong credentials"),
    (('database "', "does not exist"), "no such database"),
    (('role "', "does not exist"), "no such user"),
    (("unable to open database file",), "the SQLite file cannot be created (does its folder exist?)"),
)


class StudyError(UserError, ValueError):
    """The storage is unreachable or refuses us, or the study clashes with the recipe."""


@dataclass(frozen=True)
class StudySpec:
    """What the recipe asks of the study it creates or joins."""

    name: str
    direction: str
    metric: str


def redact(url: str) -> str:
    """The storage URL without its password, for messages and logs."""
    import sqlalchemy

    try:
        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:  # not even parsable as a URL: nothing to hide in it that we could find
        return url


def worker_id() -> str:
    """``host:pid``: names the worker in each trial (the pod name under Kubernetes)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def open_storage(url: str, *, heartbeat_interval: int, grace_period: int | None, wait_s: float) -> Any:
    """An Optuna RDB storage with heartbeats, retried with jittered backoff for at most ``wait_s`` seconds.

    Raises:
        StudyError: the URL is not one Optuna can use, its driver is missing, the credentials or database are
            wrong, or the server still does not answer after ``wait_s`` seconds.
    """
    import optuna

    deadline = time.monotonic() + wait_s
    for attempt in itertools.count():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeats: stable enough
                return optuna.storages.RDBStorage(
                    url,
                    engine_kwargs=_engine_kwargs(url),
                    heartbeat_interval=heartbeat_interval,
                    grace_period=grace_period,
                )
        except ImportError as e:  # Optuna re-raises the driver's ModuleNotFoundError as a plain ImportError
            missing = e if isinstance(e, ModuleNotFoundError) else e.__cause__
            raise StudyError(f"storage {redact(url)}: {_driver_hint(getattr(missing, 'name', None))}") from e
        except Exception as e:  # SQLAlchemy, the driver and Optuna each raise their own types
            text = _first_line(e)
            fatal = _fatal(e, text)
            if fatal is not None:
                raise StudyError(f"storage {redact(url)}: {fatal}: {text}") from e
            left = deadline - time.monotonic()
            if left <= 0:
                raise StudyError(f"storage {redact(url)} unreachable after {wait_s:g} s: {text}") from e
            time.sleep(min(left, _backoff(attempt)))


def join_study(storage: Any, spec: StudySpec, sampler: Any, pruner: Any) -> Any:
    """Create the study, or load it when another worker (or an earlier run) made it, and check it matches.

    Raises:
        StudyError: a study of that name exists with another direction or metric.
    """
    import optuna

    try:
        study = optuna.create_study(
            storage=storage, study_name=spec.name, sampler=sampler, pruner=pruner, direction=spec.direction
        )
        study.set_user_attr(METRIC_ATTR, spec.metric)
        return study
    except optuna.exceptions.DuplicatedStudyError:
        pass  # made by another worker: join it
    study = optuna.load_study(storage=storage, study_name=spec.name, sampler=sampler, pruner=pruner)
    if len(study.directions) != 1 or study.direction.name.lower() != spec.direction:
        found = "/".join(d.name.lower() for d in study.directions)
        raise StudyError(
            f"study {spec.name!r} exists and is set to {found}; the recipe asks to {spec.direction} "
            f"{spec.metric}: choose another tune.study_name"
        )
    metric = _wait_for_attr(study, METRIC_ATTR)
    if metric is None:  # a study made outside modelpress (or its creator died before naming it): adopt it
        study.set_user_attr(METRIC_ATTR, spec.metric)
    elif metric != spec.metric:
        raise StudyError(
            f"study {spec.name!r} exists and optimizes {metric}; the recipe asks for {spec.metric}: "
            "choose another tune.study_name"
        )
    return study


class _Lock(Protocol):
    def acquire(self) -> None: ...
    def release(self) -> None: ...
    def close(self) -> None: ...


class _NoLock:
    """Storages we cannot lock (MySQL, journal files): the total may exceed the budget by workers - 1."""

    def acquire(self) -> None:
        pass

    def release(self) -> None:
        pass

    def close(self) -> None:
        pass


class _FileLock:
    """flock on a file beside a SQLite database: the processes of one machine."""

    def __init__(self, path: Path):
        self._path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        if self._fd is None:
            self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
            fcntl.flock(self._fd, fcntl.LOCK_EX)

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def close(self) -> None:
        self.release()


class _AdvisoryLock:
    """A PostgreSQL session advisory lock on one connection kept for the worker's life.

    The server drops it when the connection dies, so a killed worker never leaves it held.
    """

    def __init__(self, url: str, key: int):
        import sqlalchemy

        self._engine = sqlalchemy.create_engine(
            url, poolclass=sqlalchemy.pool.NullPool, isolation_level="AUTOCOMMIT", **_engine_kwargs(url)
        )
        self._key = key
        self._conn: Any = None
        self._held = False

    def acquire(self) -> None:
        import sqlalchemy

        if self._conn is None:
            self._conn = self._engine.connect()
        self._conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": self._key})
        self._held = True

    def release(self) -> None:
        import sqlalchemy

        if self._held:
            self._held = False
            self._conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"), {"k": self._key})

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()  # drops the lock with the session if still held
            self._conn = None
        self._engine.dispose()


def study_lock(url: str, study_name: str) -> _Lock:
    """The lock that serialises "count the trials, then start one" across the workers of a study."""
    import sqlalchemy

    parsed = sqlalchemy.engine.make_url(url)
    if parsed.get_backend_name() == "postgresql":
        digest = hashlib.sha256(f"modelpress-tune:{study_name}".encode()).digest()
        return _AdvisoryLock(url, int.from_bytes(digest[:8], "big", signed=True))
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        return _FileLock(Path(f"{parsed.database}.lock"))
    return _NoLock()


class TrialBudget:
    """Starts trials while the study holds fewer than ``total`` of them, and decides who writes the results.

    Args:
        study: the joined study.
        total: the whole study's trial budget (every worker gets the same).
        lock: from :func:`study_lock`.
    """

    def __init__(self, study: Any, total: int, lock: _Lock):
        self.study = study
        self.total = total
        self._lock = lock

    def run_one(self, objective: Callable[[Any], float], catch: tuple[type[Exception], ...], callback: Any) -> bool:
        """Run one trial if the budget allows; False once the study holds ``total`` trials."""
        self._lock.acquire()
        try:
            if len(self.study.get_trials(deepcopy=False)) >= self.total:
                return False

            seen: dict[str, Any] = {}

            def unlocked(trial: Any) -> float:
                seen["trial"] = trial
                self._lock.release()  # the trial exists now: the next worker may count it
                try:
                    return objective(trial)
                except BaseException as e:
                    seen["error"] = e
                    raise

            # optimize() rather than ask/tell: Optuna then runs the heartbeat thread and fails stale trials
            try:
                self.study.optimize(unlocked, n_trials=1, catch=catch, callbacks=[callback], gc_after_trial=False)
            except Exception as e:
                # Optuna's own error from telling a trial that another worker already failed, or a real one
                lost = "trial" in seen and e is not seen.get("error") and self._failed_elsewhere(seen["trial"].number)
                if not lost:
                    raise
                # our heartbeats came too late (a starved machine): another worker declared the trial dead
                print(
                    f"trial {seen['trial'].number} was marked FAIL by another worker: its heartbeat was older than "
                    "tune.grace_period; going on with the next one",
                    file=sys.stderr,
                    flush=True,
                )
            return True
        finally:
            self._lock.release()

    def _failed_elsewhere(self, number: int) -> bool:
        (trial,) = [t for t in self.study.get_trials(deepcopy=False) if t.number == number]
        return trial.state.name == "FAIL"

    def wait_finished(self, poll_s: float, progress: bool) -> None:
        """Wait until no trial is running: a dead worker's trial turns FAIL once its heartbeat is stale."""
        import optuna

        running = optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.WAITING
        shown = None
        while True:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(self.study)
            left = [t.number for t in self.study.get_trials(deepcopy=False, states=running)]
            if not left:
                return
            if progress and left != shown:
                print(f"waiting for trials {left} of other workers", file=sys.stderr, flush=True)
                shown = left
            time.sleep(poll_s)

    def claim_results(self) -> bool:
        """True for exactly one worker per budget: the first to find the finished study unclaimed."""
        self._lock.acquire()
        try:
            claimed = self.study.user_attrs.get(RESULTS_ATTR)
            if claimed is not None and claimed.get("trials") == self.total:
                return False
            self.study.set_user_attr(RESULTS_ATTR, {"trials": self.total, "worker": worker_id()})
            return True
        finally:
            self._lock.release()

    def close(self) -> None:
        self._lock.close()

    def finished_by(self) -> str | None:
        """The worker that claimed the results of this budget, if one did."""
        claimed = self.study.user_attrs.get(RESULTS_ATTR)
        return claimed["worker"] if claimed is not None and claimed.get("trials") == self.total else None


def worker_seed(seed: int, shared: bool) -> int:
    """The sampler's seed: the recipe's alone, or mixed with the worker's name on a shared study.

    Workers seeded alike would draw the same random start-up trials, so each worker of a shared study gets its own.
    """
    if not shared:
        return seed
    digest = hashlib.sha256(json.dumps([seed, worker_id()]).encode()).digest()
    return int.from_bytes(digest[:4], "big")


def _engine_kwargs(url: str) -> dict[str, Any]:
    import sqlalchemy

    backend = sqlalchemy.engine.make_url(url).get_backend_name()
    if backend == "postgresql":
        # libpq waits for a TCP connect for ever without it (a blackholed host); open_storage retries instead
        return {"connect_args": {"connect_timeout": 10}, "pool_pre_ping": True}
    if backend == "sqlite":
        return {"connect_args": {"timeout": 60}}  # processes of one machine take turns on the file
    return {}


def _driver_hint(module: str | None) -> str:
    top = (module or "").split(".")[0]
    if top in DRIVERS:
        what, how = DRIVERS[top]
        return f"{what} is not installed: {how}"
    return f"its driver module {top!r} is not installed"


def _first_line(e: BaseException) -> str:
    cause = e.__cause__ or e.__context__
    text = str(getattr(e, "orig", None) or e) or (str(cause) if cause else type(e).__name__)
    return " ".join(text.strip().splitlines()[:1]) or type(e).__name__


def _fatal(e: BaseException, text: str) -> str | None:
    """What is wrong when no retry can help, else None."""
    import sqlalchemy

    if isinstance(e, sqlalchemy.exc.NoSuchModuleError | sqlalchemy.exc.ArgumentError):
        return "not a database URL Optuna can use"
    lowered = text.lower()
    for markers, meaning in FATAL:
        if all(m in lowered for m in markers):
            return meaning
    if any(marker in lowered for marker in TRANSIENT):
        return None
    if isinstance(e, sqlalchemy.exc.OperationalError | sqlalchemy.exc.IntegrityError):
        return None  # connection-level trouble we have not listed: worth another try within the wait
    return "cannot use it"


def _backoff(attempt: int) -> float:
    """Full-jitter exponential backoff: 0.1 s doubling to 5 s, so racing workers spread out."""
    return random.uniform(0, min(5.0, 0.1 * 2**attempt))


def _wait_for_attr(study: Any, key: str, timeout_s: float = 10.0) -> Any:
    """The creator names the metric right after creating the study: give it a moment."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = study.user_attrs.get(key)
        if value is not None or time.monotonic() >= deadline:
            return value
        time.sleep(0.2)
