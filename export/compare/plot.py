"""The comparison as a picture: quality against size (log scale), colour for latency, Pareto front drawn."""

from __future__ import annotations

import math
from pathlib import Path

from modelpress.export.compare.schema import Report, VariantRow


def _quality(row: VariantRow) -> float | None:
    if row.accuracy is not None:
        return 100 * float(row.accuracy)
    cosine = row.fidelity.get("mean_cosine")
    return None if cosine is None else float(cosine)


def _human_bytes(value: float, _pos: object = None) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if value >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value:.0f} B"


def _limits(values: list[float], accuracy: bool) -> tuple[float, float]:
    """A y range that shows small differences without inventing accuracies above 100 %."""
    lo, hi = min(values), max(values)
    pad = max((hi - lo) * 0.15, 0.5 if accuracy else 0.002)
    top = hi + pad
    return lo - pad, min(top, 100.0 + pad / 4) if accuracy else min(top, 1.0 + pad / 4)


# Label offsets tried in turn (points from the marker): right, then above and below at growing distances.
# Then the same on the left, for points near the right edge.
_OFFSETS = [(6, 4), (6, -11), (6, 14), (6, -21), (6, 24), (6, -31), (6, 34), (-6, 4), (-6, -11), (-6, 14)]


def _label(ax: object, names: list[str], xs: list[float], ys: list[float]) -> None:
    """Name every point, moving a label up or down until it overlaps no label placed before it.

    Variants of one family often sit within a few pixels (same accuracy, similar size): fixed offsets make
    their names unreadable.
    """
    fig = ax.figure  # type: ignore[attr-defined]
    scale = fig.dpi / 72.0  # points -> pixels
    right = ax.get_window_extent().x1  # type: ignore[attr-defined]
    placed: list[tuple[float, float, float, float]] = []
    for name, x, y in sorted(zip(names, xs, ys, strict=True), key=lambda t: (t[1], t[2])):
        px, py = ax.transData.transform((x, y))  # type: ignore[attr-defined]
        width, height = 5.0 * len(name) * scale, 9.0 * scale  # ~8-point text
        for dx, dy in _OFFSETS:
            left = px + dx * scale - (width if dx < 0 else 0)
            box = (left, py + dy * scale, left + width, py + dy * scale + height)
            overlaps = any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in placed)
            if not overlaps and box[2] <= right:
                break
        placed.append(box)
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(dx, dy), fontsize=8,  # type: ignore[attr-defined]
                    ha="right" if dx < 0 else "left")  # fmt: skip


def plot_report(report: Report, path: Path) -> Path:
    """Write one panel per family to ``path`` (PNG) and return it."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and CI
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    families = sorted({r.family for r in report.rows})
    fig, axes = plt.subplots(1, len(families), figsize=(6.5 * len(families), 5), squeeze=False)
    latencies = [r.latency_p50_ms for r in report.rows if r.latency_p50_ms is not None]
    norm = matplotlib.colors.LogNorm(min(latencies), max(latencies)) if len(latencies) > 1 else None
    scatter = None
    for ax, family in zip(axes[0], families, strict=True):
        rows = [r for r in report.rows if r.family == family and r.onnx_bytes and _quality(r) is not None]
        if not rows:
            ax.set_title(f"{family}: nothing measurable")
            continue
        sizes = [r.onnx_bytes for r in rows]
        quality = [_quality(r) for r in rows]
        colours = [r.latency_p50_ms if r.latency_p50_ms is not None else float("nan") for r in rows]
        scatter = ax.scatter(sizes, quality, c=colours, cmap="viridis_r", norm=norm, s=70, edgecolors="black")
        front = sorted((r for r in rows if r.pareto), key=lambda r: r.onnx_bytes)
        if len(front) > 1:
            ax.step([r.onnx_bytes for r in front], [_quality(r) for r in front], where="post",
                    color="crimson", linestyle="--", label="Pareto front")  # fmt: skip
            ax.legend(loc="lower right")
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(matplotlib.ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(_human_bytes))
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlim(min(sizes) / 1.6, max(sizes) * 1.6)  # room for the labels at both ends
        ax.set_ylim(*_limits(quality, rows[0].accuracy is not None))
        ax.set_xlabel("ONNX size, bytes (log scale, external data included)")
        ax.set_ylabel("test accuracy, %" if rows[0].accuracy is not None else "mean cosine to fp32 teacher")
        ax.set_title(family)
        ax.grid(True, which="both", alpha=0.3)
        _label(ax, [r.model for r in rows], sizes, quality)
    if scatter is not None and norm is not None:
        bar = fig.colorbar(scatter, ax=axes[0].tolist(), label="p50 latency at batch 1, ms")
        plain = matplotlib.ticker.FuncFormatter(lambda v, _pos: f"{v:.3g}")
        bar.ax.yaxis.set_major_formatter(plain)
        # Minor ticks are labelled only when the range has too few decades for major ones; across several
        # decades (digits µs beside MiniLM ms) labelling them all piles the numbers on each other.
        decades = math.log10(norm.vmax / norm.vmin)
        bar.ax.yaxis.set_minor_formatter(plain if decades < 1 else matplotlib.ticker.NullFormatter())
    fig.suptitle(f"modelpress compare ({report.threads} threads)")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path
