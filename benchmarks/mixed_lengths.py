r"""Served text model under a mixed-length load: server configurations side by side, alternating rounds.

    python -m modelpress.benchmarks.mixed_lengths --repository DIR --model minilm-int8 \\
        --config batched= --config unbatched=MODELPRESS_DYNAMIC_BATCHING=false --concurrency 16

Real text traffic mixes short and long sentences. The load is ``--texts`` sentences from CPython's own
documentation (``pydoc_data``, installed with Python), cut to token lengths drawn log-uniformly between
``--min-tokens`` and ``--max-tokens`` (counted with the model's own tokenizer, special tokens included), one
text per V2 JSON request; wrk sends them in turn (:func:`modelpress.benchmarks.loadgen.rotating_lua`). Each
``--config LABEL=KEY=VALUE,KEY=VALUE`` is one server (``python -m modelpress.serving``) with those settings
(``API=v1`` or ``API=openai`` among them sends V1 predict or OpenAI embeddings bodies instead of V2); all
are started and warmed up, then every round runs wrk against each in turn, so drifts of a shared machine hit
them alike. Prints Markdown: per round and configuration req/s, p50, p99 and the ratio to the first config.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import re
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from modelpress.benchmarks.loadgen import Payload, rotating_lua, run_wrk
from modelpress.benchmarks.payloads import v2_json
from modelpress.benchmarks.processes import free_port, python_module, running_server
from modelpress.benchmarks.served import latest_manifest, load_average
from modelpress.serving.manifest import ModelManifest


def corpus_words() -> list[str]:
    """Words of CPython's bundled documentation topics, in order (real English technical prose)."""
    from pydoc_data.topics import topics

    text = " ".join(topics[key] for key in sorted(topics))
    return re.findall(r"[A-Za-z][A-Za-z'.,()-]*", text)


def token_lengths(count: int, low: int, high: int, seed: int) -> list[int]:
    """``count`` lengths drawn log-uniformly in [low, high]: many short texts, a tail of long ones."""
    rng = np.random.default_rng(seed)
    return [round(math.exp(x)) for x in rng.uniform(math.log(low), math.log(high), count)]


def mixed_texts(tokenizer_file: Path, lengths: list[int], seed: int = 0) -> list[tuple[str, int]]:
    """One text per wanted length (±2 tokens), cut from the corpus at a random place; (text, tokens)."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(tokenizer_file))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    words = corpus_words()
    rng = np.random.default_rng(seed)
    out = []
    for want in lengths:
        start = int(rng.integers(0, len(words) - 400))
        n = max(1, want // 2)
        while True:  # grow word by word until the tokenizer says the text is long enough
            text = " ".join(words[start : start + n])
            got = len(tokenizer.encode(text).ids)
            if got >= want or n > 400:
                break
            n += 1
        out.append((text, got))
    return out


APIS = ("v2", "v1", "openai")


def parse_config(text: str) -> tuple[str, dict[str, str]]:
    """``LABEL=MODELPRESS_X=v,...`` → (label, settings); ``API=v1`` / ``API=openai`` picks the route (default v2)."""
    label, sep, assignments = text.partition("=")
    if not sep or not label:
        raise argparse.ArgumentTypeError(f"expected LABEL=KEY=VALUE[,KEY=VALUE...] or LABEL=, got {text!r}")
    env = {}
    for item in filter(None, assignments.split(",")):
        key, eq, value = item.partition("=")
        if not eq or not (key.startswith("MODELPRESS_") or (key == "API" and value in APIS)):
            raise argparse.ArgumentTypeError(f"expected MODELPRESS_KEY=VALUE or API={'|'.join(APIS)}, got {item!r}")
        env[key] = value
    return label, env


def text_payload(api: str, model: str, input_name: str, text: str) -> Payload:
    """One text as V2 infer, V1 predict or OpenAI embeddings JSON."""
    if api == "v2":
        return v2_json(model, input_name, np.array([text]))
    path, body = (
        (f"/v1/models/{model}:predict", {"instances": [text]}) if api == "v1"
        else ("/v1/embeddings", {"model": model, "input": text})
    )  # fmt: skip
    return Payload(path, json.dumps(body).encode(), {"Content-Type": "application/json"}, "json")


@dataclass(frozen=True)
class TextLoad:
    """A served text model's latest version and the mixed-length texts to send it (each with its token count)."""

    manifest: ModelManifest
    version_dir: Path
    texts: list[tuple[str, int]]


def text_load(args: argparse.Namespace) -> TextLoad:
    """``--model`` in ``--repository`` and ``--texts`` texts of ``--min-tokens``..``--max-tokens`` (``--seed``)."""
    manifest = latest_manifest(args.repository, args.model)
    if manifest is None or manifest.tokenizer is None:
        raise SystemExit(f"error: --model {args.model!r}: no text model of that name in {args.repository}")
    version_dir = args.repository / args.model / str(manifest.version)
    lengths = token_lengths(args.texts, args.min_tokens, args.max_tokens, args.seed)
    return TextLoad(manifest, version_dir, mixed_texts(version_dir / manifest.tokenizer.file, lengths, args.seed))


def add_text_load_arguments(parser: argparse.ArgumentParser) -> None:
    """The options :func:`text_load` reads (besides ``--repository`` and ``--model``)."""
    parser.add_argument("--texts", type=int, default=64, help="distinct texts, sent in turn [64]")
    parser.add_argument("--min-tokens", type=int, default=5)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> dict[str, object]:
    load = text_load(args)
    texts, name = load.texts, load.manifest.inputs[0].name
    tokens = [n for _, n in texts]
    print(f"load: {len(texts)} texts, tokens min {min(tokens)} median {statistics.median(tokens):g} "
          f"mean {statistics.mean(tokens):.1f} max {max(tokens)}", file=sys.stderr, flush=True)  # fmt: skip
    results: dict[str, list[dict[str, object]]] = {label: [] for label, _ in args.config}
    with contextlib.ExitStack() as stack:
        running = []
        for label, config in args.config:
            env = {k: v for k, v in config.items() if k != "API"}
            payloads = [text_payload(config.get("API", "v2"), args.model, name, t) for t, _ in texts]
            extra = rotating_lua(payloads)
            port = free_port()
            argv = python_module(
                "modelpress.serving", "--repository", str(args.repository.resolve()), "--port", str(port)
            )
            stack.enter_context(running_server(argv, port, env={"MODELPRESS_LOG_LEVEL": "warning", **env}, timeout=300))
            run_wrk(
                f"http://127.0.0.1:{port}", payloads[0], concurrency=max(args.concurrency), seconds=3, extra_lua=extra
            )  # fmt: skip  (warm-up)
            running.append((label, port, payloads, extra))
        for round_no in range(args.rounds):
            for concurrency in args.concurrency:
                for label, port, payloads, extra in running:
                    r = run_wrk(f"http://127.0.0.1:{port}", payloads[0], concurrency=concurrency, seconds=args.seconds,
                                extra_lua=extra)  # fmt: skip
                    step = {"round": round_no + 1, "concurrency": concurrency, "rps": r.throughput_rps,
                            "p50_ms": r.p50_ms, "p99_ms": r.p99_ms, "requests": r.requests, "errors": r.errors,
                            "load_1m": load_average()[0]}  # fmt: skip
                    results[label].append(step)
                    line = f"{r.throughput_rps:.1f} req/s p50 {r.p50_ms} p99 {r.p99_ms} ms errors {r.errors}"
                    print(f"round {round_no + 1} c={concurrency} {label}: {line}", file=sys.stderr, flush=True)
    return {"texts": len(texts), "tokens": tokens, "results": results}


def to_markdown(results: dict[str, list[dict[str, object]]]) -> str:
    labels = list(results)
    first = labels[0]
    lines = [
        "| round | c | config | req/s | p50 ms | p99 ms | errors | vs " + first + " |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for i, base in enumerate(results[first]):
        for label in labels:
            step = results[label][i]
            ratio = step["rps"] / base["rps"] if base["rps"] else float("nan")
            lines.append(f"| {step['round']} | {step['concurrency']} | {label} | {step['rps']:.1f} | "
                         f"{step['p50_ms']} | {step['p99_ms']} | {step['errors']} | {ratio:.2f}x |")  # fmt: skip
    medians = {label: statistics.median(s["rps"] for s in results[label]) for label in labels}
    lines.append("")
    lines.append("median req/s: " + ", ".join(f"{k} {v:.1f} ({v / medians[first]:.2f}x)" for k, v in medians.items()))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repository", type=Path, required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--config", type=parse_config, action="append", required=True,
                        help="LABEL=MODELPRESS_X=v,MODELPRESS_Y=w (repeat; LABEL= for the defaults)")  # fmt: skip
    parser.add_argument("--concurrency", type=int, nargs="+", default=[16])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    add_text_load_arguments(parser)
    parser.add_argument("--json", type=Path, help="also write every figure here")
    args = parser.parse_args()
    out = run(args)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    print(to_markdown(out["results"]))


if __name__ == "__main__":
    main()
