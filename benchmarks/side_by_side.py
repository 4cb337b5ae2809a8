"""The echo ceiling and one or more builds of our server, side by side in one run, alternating rounds.

    python -m modelpress.benchmarks.side_by_side --repository DIR --model digits \
        --build before=/tmp/base --build after=.
    python -m modelpress.benchmarks.side_by_side --repository DIR --build a=. --build b=. \
        --env b:MODELPRESS_INTRA_OP_THREADS=1

Each ``--build LABEL=DIR`` is our server run from DIR (a checkout, or a copy of another commit's folders:
``git archive COMMIT modelpress common serving | tar -x -C DIR``), with this interpreter, so two builds differ only
in their serving code and in the ``--env`` settings given to each. A build whose folders install under the
``modelpress`` namespace runs as ``python -m modelpress.serving`` from a view of DIR laid out as installed
(:func:`namespace_view`); an older one as ``python -m serving`` from DIR. Every server (the
echo too) is started once, warmed up, then each round runs wrk against each server in turn at each concurrency,
so slow drifts of this shared machine hit all of them alike. Per step: req/s, p50 / p99, and the server's CPU
per request (user + system time of its process from /proc over the step, all its threads). Printed as Markdown,
with the ratio to the echo per round.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path

from modelpress.benchmarks.loadgen import Payload, run_wrk
from modelpress.benchmarks.processes import free_port, python_module, running_server
from modelpress.benchmarks.served import latest_manifest, load_average, workload_for

ECHO = "echo"


@dataclass
class Server:
    label: str
    argv: list[str]
    env: dict[str, str]
    cwd: Path | None = None


def cpu_seconds(pid: int, thread: int | None = None) -> float:
    """User + system CPU time of a process (every thread), or of one of its threads, from /proc (Linux)."""
    stat = Path(f"/proc/{pid}/stat") if thread is None else Path(f"/proc/{pid}/task/{thread}/stat")
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


STAGE_FOLDERS = ("common", "training", "export", "serving", "benchmarks")


def namespace_view(build: Path, into: Path) -> Path:
    """A folder where ``modelpress.serving`` imports from ``build``, as an installed wheel maps it.

    The checkout keeps ``serving/`` at the top level while the installed package names it ``modelpress.serving``;
    symbolic links give the other build's code that name ahead of this interpreter's editable install.
    """
    package = into / "modelpress"
    package.mkdir(parents=True)
    for entry in (build / "modelpress").iterdir():
        (package / entry.name).symlink_to(entry.resolve())
    for folder in STAGE_FOLDERS:
        if (build / folder).is_dir():
            (package / folder).symlink_to((build / folder).resolve())
    return into


def is_namespaced(build: Path) -> bool:
    """Whether the build's serving code imports itself as ``modelpress.serving`` (the namespace move) or ``serving``."""
    return "modelpress.serving" in (build / "serving" / "__main__.py").read_text()


def servers_for(
    repository: Path, builds: list[tuple[str, Path]], threads: int, extra_env: dict[str, dict[str, str]] | None = None
) -> list[Server]:
    env = {"MODELPRESS_INTRA_OP_THREADS": str(threads), "MODELPRESS_INTER_OP_THREADS": "1",
           "MODELPRESS_LOG_LEVEL": "warning"}  # fmt: skip
    extra_env = extra_env or {}
    views = Path(tempfile.mkdtemp(prefix="modelpress-builds-"))
    ours = []
    for label, folder in builds:
        settings = env | extra_env.get(label, {})
        if is_namespaced(folder):
            module, cwd = "modelpress.serving", namespace_view(folder, views / label)
        else:
            module, cwd = "serving", folder.resolve()
        ours.append(Server(label, python_module(module, "--repository", str(repository.resolve())), settings, cwd))
    return [Server(ECHO, python_module("modelpress.benchmarks.baselines.echo_server"), {}, None), *ours]


def step(pid: int, port: int, payload: Payload, concurrency: int, seconds: int) -> dict[str, object]:
    before = cpu_seconds(pid)
    result = run_wrk(f"http://127.0.0.1:{port}", payload, concurrency=concurrency, seconds=seconds)
    cpu = cpu_seconds(pid) - before
    return {"concurrency": concurrency, "rps": result.throughput_rps, "p50_ms": result.p50_ms,
            "p99_ms": result.p99_ms, "requests": result.requests, "errors": result.errors,
            "cpu_us_per_request": cpu / max(result.requests, 1) * 1e6, "load_1m": load_average()[0]}  # fmt: skip


def parse_build(text: str) -> tuple[str, Path]:
    label, sep, folder = text.partition("=")
    if not sep or not label or label == ECHO or not (Path(folder) / "serving").is_dir():
        raise argparse.ArgumentTypeError(
            f"expected LABEL=DIR with DIR/serving a folder (label not 'echo'), got {text!r}"
        )
    return label, Path(folder)


def parse_env(text: str) -> tuple[str, str, str]:
    label, sep, assignment = text.partition(":")
    key, eq, value = assignment.partition("=")
    if not sep or not label or not eq or not key:
        raise argparse.ArgumentTypeError(f"expected LABEL:KEY=VALUE, got {text!r}")
    return label, key, value


def envs_by_label(envs: list[tuple[str, str, str]], labels: list[str]) -> dict[str, dict[str, str]]:
    """``--env`` settings grouped by build; a label that names no ``--build`` is an error."""
    grouped: dict[str, dict[str, str]] = {}
    for label, key, value in envs:
        if label not in labels:
            raise SystemExit(f"error: --env {label}:{key}=...: no --build is labelled {label!r} (have {labels})")
        grouped.setdefault(label, {})[key] = value
    return grouped


def run(args: argparse.Namespace) -> dict[str, list[dict[str, object]]]:
    found = latest_manifest(args.repository, args.model)
    if found is None:
        raise SystemExit(f"error: --model {args.model!r}: not in {args.repository}")
    payload = workload_for(args.model, found.inputs[0], found.outputs[0].name).payloads["json"]
    extra_env = envs_by_label(args.env, [label for label, _ in args.build])
    servers = servers_for(args.repository, args.build, args.threads, extra_env)
    results: dict[str, list[dict[str, object]]] = {s.label: [] for s in servers}
    with contextlib.ExitStack() as stack:
        running = []
        for server in servers:
            port = free_port()
            with contextlib.chdir(server.cwd or Path.cwd()):  # the build's code is found from its folder
                proc = stack.enter_context(running_server([*server.argv, "--port", str(port)], port, env=server.env,
                                                          timeout=300))  # fmt: skip
            run_wrk(f"http://127.0.0.1:{port}", payload, concurrency=max(args.concurrency), seconds=2)  # warm-up
            running.append((server, proc.pid, port))
        for round_no in range(args.rounds):
            for concurrency in args.concurrency:
                for server, pid, port in running:
                    figures = step(pid, port, payload, concurrency, args.seconds) | {"round": round_no + 1}
                    results[server.label].append(figures)
    return results


def to_markdown(results: dict[str, list[dict[str, object]]], concurrencies: list[int]) -> str:
    lines = []
    for concurrency in concurrencies:
        lines += [f"\n**concurrency {concurrency}**\n",
                  "| server | req/s (rounds) | p50 ms | p99 ms | server CPU µs / request | ratio to echo (req/s) |",
                  "|---|---|---|---|---|---|"]  # fmt: skip
        echo = [r for r in results[ECHO] if r["concurrency"] == concurrency]
        for label, rows in results.items():
            rows = [r for r in rows if r["concurrency"] == concurrency]
            ratios = [r["rps"] / e["rps"] for r, e in zip(rows, echo, strict=True)]
            columns = (("rps", ",.0f"), ("p50_ms", ".3f"), ("p99_ms", ".2f"), ("cpu_us_per_request", ".0f"))
            cells = [", ".join(f"{r[key]:{spec}}" for r in rows) for key, spec in columns]
            ratio = (
                "–"
                if label == ECHO
                else f"{', '.join(f'{x:.1%}' for x in ratios)} (median {statistics.median(ratios):.1%})"
            )
            lines.append(f"| {label} | " + " | ".join(cells) + f" | {ratio} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repository", type=Path, required=True)
    parser.add_argument("--model", default="digits")
    parser.add_argument("--build", type=parse_build, action="append", required=True, metavar="LABEL=DIR")
    parser.add_argument("--env", type=parse_env, action="append", default=[], metavar="LABEL:KEY=VALUE",
                        help="an environment variable of one build's server (repeatable)")  # fmt: skip
    parser.add_argument("--concurrency", type=int, action="append", default=None)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads (as the bench)")
    parser.add_argument("--json", type=Path, default=None, help="also write every step's figures here")
    args = parser.parse_args()
    args.concurrency = args.concurrency or [32, 1]
    if args.rounds < 1 or args.seconds < 1 or min(args.concurrency) < 1:
        raise SystemExit("error: --rounds, --seconds and --concurrency must be at least 1")
    results = run(args)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    print(to_markdown(results, args.concurrency))


if __name__ == "__main__":
    main()
