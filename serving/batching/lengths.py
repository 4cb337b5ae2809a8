"""Splitting a batch of token sequences into runs of similar length, so padding does not eat the batch's gain.

A batch of texts is padded to its longest: with lengths from 5 to 128 tokens, most of a padded batch is
padding. Running each text alone wastes nothing on padding but pays a run's fixed cost per text and loses the
batched matrix products. :func:`length_groups` picks the cheapest split of one batch into runs, with a run
costing its rows times its longest length (the padded tokens it computes) plus ``run_overhead_tokens`` (the
fixed cost of a run, in tokens' worth of compute). Sorted by length, the best split is contiguous, so a
dynamic programme over the sorted lengths finds it exactly, in O(n²) numpy steps over at most a batch's rows.
"""

from __future__ import annotations

import numpy as np


def length_groups(lengths: np.ndarray, run_overhead_tokens: float) -> list[np.ndarray]:
    """Row indices of each run, shortest texts first; one group when splitting would not pay.

    Args:
        lengths: tokens per row (what the attention mask covers).
        run_overhead_tokens: the fixed cost of one more run, in tokens of compute.
    """
    n = len(lengths)
    order = np.argsort(lengths, kind="stable")
    if n < 2:
        return [order]
    ordered = np.asarray(lengths, dtype=np.float64)[order]
    best = np.zeros(n + 1)  # best[i]: cheapest cost of the i shortest rows
    cut = np.zeros(n + 1, dtype=np.int64)  # where the last run of best[i] starts
    starts = np.arange(n)
    for i in range(1, n + 1):
        # the last run takes rows j..i-1 (sorted), padded to ordered[i-1]
        costs = best[:i] + (i - starts[:i]) * ordered[i - 1] + run_overhead_tokens
        j = int(np.argmin(costs))
        best[i], cut[i] = costs[j], j
    groups = []
    i = n
    while i > 0:
        groups.append(order[cut[i] : i])
        i = int(cut[i])
    return groups[::-1]
