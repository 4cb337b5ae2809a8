"""The process-wide weak cache behind shared tables and tokenizers."""

from __future__ import annotations

import gc

from modelpress.serving.shared import SharedByKey


class Value:
    pass


def test_one_value_per_key_made_once_and_gone_with_its_last_holder():
    cache: SharedByKey[Value] = SharedByKey()
    made: list[str] = []

    def make(key: str):
        return lambda: made.append(key) or Value()

    a = cache.get("a", make("a"))
    assert cache.get("a", make("a")) is a
    b = cache.get("b", make("b"))
    assert b is not a
    assert made == ["a", "b"]
    assert len(cache) == 2
    del b
    gc.collect()
    assert len(cache) == 1
    assert isinstance(cache.get("b", make("b")), Value)
    assert made == ["a", "b", "b"]  # made anew once nothing held it
