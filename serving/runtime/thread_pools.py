"""ONNX Runtime's process-wide thread pools, shared by every session the server loads.

With a pool per session, each of the repository's models has its own intra-op threads. Their threads can
only be left spinning after a run at a price: the previous model's spinning pool takes the cores from the next
model's run (measured with MiniLM variants taking turns), so per-session pools spin off, and every batch-1 run
then pays for waking sleeping threads and idle vCPUs. One shared pool has neither problem: whichever model
runs, the threads are the same, so they may spin briefly after a run (ORT's own default), which keeps a core
awake for the next request: digits at concurrency 1 went from 0.37-0.52 ms to 0.23-0.31 ms p50 (an echo
endpoint: 0.19-0.27 ms) here, and one pool for 15 models also means fewer threads (docs/benchmarks.md).

ORT creates its global pools once per process, and from then on refuses a session with a pool of its own
("use_per_session_threads must be false when using a global thread pool"). So once they exist every new
session of the process runs on them, whatever it asked for (with a warning when that differs), and the server
only creates them when its settings say so (a library user's process is left alone by default).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

CreatePools = Callable[[int, int], None]
ALREADY_CREATED = "already been created"  # ORT's refusal when the process has global pools already

_lock = threading.Lock()
_sizes: tuple[int, int] | None = None  # (intra, inter) of the pools this process created
_failure: str | None = None  # why they could not be created, if they could not


@dataclass(frozen=True)
class PoolChoice:
    shared: bool  # run on the process's shared pools (SessionOptions.use_per_session_threads = False)
    warning: str | None = None  # the ask could not be met as made: say why in the load log


def _ort_create(intra: int, inter: int) -> None:
    import onnxruntime as ort

    ort.set_global_thread_pool_sizes(intra, inter)


def choose_pool(want_shared: bool, intra: int, inter: int, create: CreatePools = _ort_create) -> PoolChoice:
    """The thread pools a new session runs on; creates the shared ones on the first ask (0 = ORT's default size).

    Args:
        want_shared: the session asks for the process's shared pools (else for a pool of its own).
        intra: intra-op threads asked for.
        inter: inter-op threads asked for.
        create: makes ORT's global pools (replaced in tests).
    """
    global _sizes, _failure
    with _lock:
        if _sizes is None and _failure is None and want_shared:
            try:
                create(intra, inter)
                _sizes = (intra, inter)
            except Exception as e:  # ORT's pybind Fail
                _failure = str(e)
        if _sizes is not None:
            if not want_shared:
                return PoolChoice(True, "this process runs ONNX Runtime's shared thread pools, and ORT refuses a "
                                        "pool of its own to any session once they exist: using them")  # fmt: skip
            if _sizes != (intra, inter):
                return PoolChoice(True, f"this process's shared ONNX Runtime pools have {_sizes[0]} intra-op / "
                                        f"{_sizes[1]} inter-op threads, not the {intra} / {inter} asked for: using "
                                        "them")  # fmt: skip
            return PoolChoice(True)
        if _failure is not None and ALREADY_CREATED in _failure:  # made by someone else: ORT allows nothing else
            why = "this process already has ONNX Runtime's shared thread pools, of sizes it did not choose: using them"
            return PoolChoice(True, f"{why} instead of {intra} intra-op / {inter} inter-op threads")
        if _failure is not None and want_shared:
            return PoolChoice(False, f"ONNX Runtime could not create its shared thread pools ({_failure}): a pool "
                                     "of its own")  # fmt: skip
        return PoolChoice(False)


def shared_pool_sizes() -> tuple[int, int] | None:
    """(intra, inter) sizes of the shared pools, if this process created them."""
    return _sizes
