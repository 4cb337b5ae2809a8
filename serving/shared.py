"""One object per key for the whole process, alive while something holds it.

Model versions that carry the same bytes (an embedding table, a tokenizer file) load them once: each loader asks
for its key (a content hash) and gets the copy already loaded, or makes it. The cache holds values weakly, so
the last version to unload takes the copy with it.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")


class SharedByKey(Generic[V]):
    def __init__(self) -> None:
        self._values: weakref.WeakValueDictionary[Hashable, V] = weakref.WeakValueDictionary()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._values)

    def get(self, key: Hashable, make: Callable[[], V]) -> V:
        """The value for ``key``, made with ``make()`` (under the lock, so once) when nothing holds one."""
        with self._lock:
            value = self._values.get(key)
            if value is None:
                value = make()
                self._values[key] = value
            return value
