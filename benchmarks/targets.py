"""The served targets of the benchmarks issue, checked against one sweep's results.

Each check reads the measured steps (JSON payloads, as the issue's orientation figures were) and says what it
compared, the measured ratio or difference, the bound and whether it was met; a check whose steps were not
measured (a model absent from the repository, a level not in the sweep) is left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

from modelpress.benchmarks.served import BATCHING_OFF, BATCHING_ON, ECHO, NAIVE, step_at


@dataclass(frozen=True)
class Check:
    target: str
    measured: str
    met: bool

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _ratio(results: Sequence[dict], a: tuple[str, str], b: tuple[str, str], level: int) -> tuple[dict, dict] | None:
    sa, sb = step_at(results, *a, level), step_at(results, *b, level)
    if sa is None or sb is None or not sb["throughput_rps"] or sa["p99_ms"] is None or sb["p99_ms"] is None:
        return None
    return sa, sb


def _throughput_check(results: Sequence[dict], target: str, a: tuple[str, str], b: tuple[str, str], level: int,
                      at_least: float, p99: str | None) -> Check | None:  # fmt: skip
    """``a`` >= ``at_least`` × ``b`` in req/s at ``level``; ``p99`` "lower" or "not higher" adds that condition."""
    pair = _ratio(results, a, b, level)
    if pair is None:
        return None
    sa, sb = pair
    ratio = sa["throughput_rps"] / sb["throughput_rps"]
    met = ratio >= at_least
    text = f"{ratio:.2f}× ({sa['throughput_rps']:,.0f} vs {sb['throughput_rps']:,.0f} req/s)"
    if p99 is not None:
        met = met and (sa["p99_ms"] < sb["p99_ms"] if p99 == "lower" else sa["p99_ms"] <= sb["p99_ms"])
        text += f", p99 {sa['p99_ms']:.2f} vs {sb['p99_ms']:.2f} ms"
    return Check(target, text, met and not sa["errors"])


def check_targets(results: Sequence[dict], *, digits: str = "digits", text: str = "minilm-int8",
                  queue_delay_ms: float = 0.5) -> list[Check]:  # fmt: skip
    """Every served target the issue sets that this run measured."""
    checks = [
        _throughput_check(results, f"{digits} c=32 >= 60 % of the echo ceiling", (BATCHING_ON, digits),
                          (ECHO, digits), 32, 0.60, None),
        _throughput_check(results, f"{digits} c=32 >= 4× naive PyTorch, at lower p99", (BATCHING_ON, digits),
                          (NAIVE, digits), 32, 4.0, "lower"),
        _throughput_check(results, f"{text} c=16 batching on >= 1.5× off, p99 not higher", (BATCHING_ON, text),
                          (BATCHING_OFF, text), 16, 1.5, "not higher"),
        _throughput_check(results, f"{text} c=16 batching on >= 3× naive PyTorch", (BATCHING_ON, text),
                          (NAIVE, text), 16, 3.0, None),
    ]  # fmt: skip
    for level in (16, 32, 64):
        checks.append(_throughput_check(results, f"{digits} c={level} batching on >= 0.95× off",
                                        (BATCHING_ON, digits), (BATCHING_OFF, digits), level, 0.95, None))  # fmt: skip
    on, off = step_at(results, BATCHING_ON, digits, 1), step_at(results, BATCHING_OFF, digits, 1)
    if on and off and on["p50_ms"] is not None and off["p50_ms"] is not None:
        added = on["p50_ms"] - off["p50_ms"]
        checks.append(Check(f"{digits} c=1 batching adds <= its queue delay ({queue_delay_ms:g} ms) to p50",
                            f"{added:+.3f} ms (p50 {on['p50_ms']:.3f} vs {off['p50_ms']:.3f} ms)",
                            added <= queue_delay_ms))  # fmt: skip
    return [c for c in checks if c is not None]


def to_markdown(checks: Sequence[Check]) -> str:
    lines = ["| target | measured | met |", "|---|---|---|"]
    lines += [f"| {c.target} | {c.measured} | {'yes' if c.met else '**no**'} |" for c in checks]
    return "\n".join(lines) + "\n"
