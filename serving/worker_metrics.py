"""One metrics view across worker processes (``--workers N``): prometheus-client's multiprocess mode.

Each worker writes its counters, histograms and gauges into memory-mapped files in one folder; a scrape,
answered by whichever worker the kernel hands the connection to, reads every worker's files: counters and
histograms summed, each gauge as its ``multiprocess_mode`` says (``serving/metrics.py``). prometheus-client picks
this mode when ``PROMETHEUS_MULTIPROC_DIR`` is set as it is imported, so ``modelpress serve --workers N`` sets it
(to ``metrics_dir``, or a fresh temporary folder) before it starts the workers, and empties the folder first:
files left by an earlier run would add that run's counts to this one's.

A worker that died (and was replaced by uvicorn) leaves its files: its counters and histograms keep counting in
the sums (a counter must never go down), while its ``live*`` gauges (in-flight requests, queue depth, memory)
are removed at the next scrape, since they describe a process that no longer exists.

Triton's statistics (``/v2/models/{m}/stats``) are rebuilt from the same files (``ModelStats.from_metrics``), so
they cover every worker too.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import values
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_enabled() -> bool:
    """Whether prometheus-client writes this process's values to files (it decided when it was imported)."""
    return values.ValueClass is not values.MutexValue


def env_dir() -> Path | None:
    """``PROMETHEUS_MULTIPROC_DIR`` when set (plain ``uvicorn --workers N`` with the variable set by hand)."""
    value = os.environ.get(ENV)
    return Path(value) if value else None


def prepare_dir(path: Path) -> None:
    """Create ``path`` and empty it of metric files, for a new server run."""
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def reap_dead(path: Path) -> list[int]:
    """Remove the live-gauge files of worker processes that no longer exist; return their pids."""
    dead = set()
    for f in path.glob("gauge_live*_*.db"):
        pid_text = f.stem.rsplit("_", 1)[-1]
        if pid_text.isdigit() and not pid_alive(int(pid_text)):
            dead.add(int(pid_text))
    for pid in dead:
        mark_process_dead(pid, str(path))
    return sorted(dead)


class WorkersCollector(Collector):
    """Every worker's values from the shared folder, after dropping the live gauges of dead workers."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._files = MultiProcessCollector(None, str(path))

    def collect(self) -> Iterator[Metric]:
        reap_dead(self.path)
        yield from self._files.collect()
