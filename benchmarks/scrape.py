"""The server's own view of a load step, read from ``/metrics`` before and after it.

Queue vs compute time and average batch rows, from the histograms' ``_sum`` and ``_count``.
"""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

HISTOGRAMS = {
    "queue": "modelpress_queue_duration_seconds",
    "compute": "modelpress_compute_duration_seconds",
    "request": "modelpress_request_duration_seconds",
    "batch_rows": "modelpress_batch_size_rows",
}


def histogram_totals(text: str, model: str | None = None) -> dict[str, tuple[float, float]]:
    """``{key: (sum, count)}`` of each histogram in :data:`HISTOGRAMS`, over every label set of ``model``."""
    totals = {key: [0.0, 0.0] for key in HISTOGRAMS}
    by_name = {name: key for key, name in HISTOGRAMS.items()}
    for family in text_string_to_metric_families(text):
        key = by_name.get(family.name)
        if key is None:
            continue
        for sample in family.samples:
            if model is not None and sample.labels.get("model") not in (None, model):
                continue
            if sample.name.endswith("_sum"):
                totals[key][0] += sample.value
            elif sample.name.endswith("_count"):
                totals[key][1] += sample.value
    return {k: (v[0], v[1]) for k, v in totals.items()}


def scrape(base_url: str, model: str | None = None) -> dict[str, tuple[float, float]] | None:
    """Totals now, or None when the server has no Prometheus endpoint (the baselines)."""
    try:
        response = httpx.get(f"{base_url}/metrics", timeout=10)
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    return histogram_totals(response.text, model)


def step_split(before: dict | None, after: dict | None) -> dict[str, float]:
    """Mean queue and compute milliseconds per request and mean rows per batch during one step."""
    if not before or not after:
        return {}
    out: dict[str, float] = {}
    for key, label in (("queue", "queue_ms"), ("compute", "compute_ms"), ("request", "server_request_ms")):
        total = after[key][0] - before[key][0]
        count = after[key][1] - before[key][1]
        if count > 0:
            out[label] = 1e3 * total / count
    rows = after["batch_rows"][0] - before["batch_rows"][0]
    batches = after["batch_rows"][1] - before["batch_rows"][1]
    if batches > 0:
        out["mean_batch_rows"] = rows / batches
        out["batches"] = batches
    return out
