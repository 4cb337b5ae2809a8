"""gRPC ModelInfer (raw contents) against REST with the binary tensor extension, one server, alternating rounds.

    flock /tmp/modelpress-heavy.lock python -m modelpress.benchmarks.grpc_vs_rest --repository DIR \
        [--model digits] [--concurrency 32] [--rounds 3] [--seconds 10]

One server process answers both (``--grpc-port``), so the two protocols share its models, batcher and cores.
REST is driven by wrk (:mod:`modelpress.benchmarks.loadgen`), gRPC by h2load (Debian's ``nghttp2-client``)
sending a pre-framed gRPC body (``-d FILE -H 'content-type: application/grpc' -H 'te: trailers'``, HTTP/2
prior knowledge) over ``concurrency`` connections of one stream each, so both are closed loops of the same
concurrency. Each round runs both, in turn, in an order that alternates between rounds. Before the rounds the
same gRPC body is sent once through a gRPC client and its logits compared with REST's (h2load checks only the
HTTP status, not ``grpc-status``); after them, the server's own count of gRPC requests by outcome is printed,
and server errors or rejections among them fail the run.
With ``--go-client``, a third load each round: ``benchmarks/grpc_go_load`` (grpc-go, built offline from Debian's
``golang-go`` and ``golang-google-grpc-dev``) sending the same request with a deadline on every call, as a Go
service would: a new ``grpc-timeout`` header each call, which h2load cannot send and which changes the client's
HPACK table every call (the server's remembered header blocks never apply).
Per step: req/s, p50 / p99 (h2load's per-request log; wrk's percentiles), server CPU per request (all threads,
and the event-loop thread alone: REST and gRPC both run on it, so it is the one that saturates first) and the
mean rows per ``session.run`` (the server's batch histogram): what isolated the gap in
benchmarks/results/20261207-grpc-throughput.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import tempfile
from pathlib import Path

import httpx
import numpy as np

from modelpress.benchmarks.loadgen import Payload, run_wrk
from modelpress.benchmarks.payloads import v2_binary
from modelpress.benchmarks.processes import free_port, python_module, running_server
from modelpress.benchmarks.scrape import scrape, step_split
from modelpress.benchmarks.served import latest_manifest
from modelpress.benchmarks.side_by_side import cpu_seconds

GRPC_PATH = "/inference.GRPCInferenceService/ModelInfer"
LIVE_PATH = "/inference.GRPCInferenceService/ServerLive"  # no data plane behind it: grpc-python's own cost


def grpc_frame(message: bytes) -> bytes:
    """A gRPC length-prefixed message: not compressed (0), 4-byte big-endian length, the bytes."""
    return b"\0" + len(message).to_bytes(4, "big") + message


def grpc_body(model: str, name: str, sample: np.ndarray) -> bytes:
    from modelpress.serving.grpc.generated import open_inference_pb2 as pb

    request = pb.ModelInferRequest(model_name=model, raw_input_contents=[sample.tobytes()])
    request.inputs.add(name=name, datatype="FP32", shape=list(sample.shape))
    return request.SerializeToString()


def check_same_answer(grpc_target: str, rest_url: str, body: bytes, payload: Payload) -> None:
    """The gRPC body, sent once by a real client, gives REST's logits (else the benchmark measures errors)."""
    import grpc

    from modelpress.serving.grpc.generated import open_inference_pb2 as pb

    with grpc.insecure_channel(grpc_target) as channel:
        call = channel.unary_unary(GRPC_PATH, response_deserializer=pb.ModelInferResponse.FromString)
        answer = call(body, timeout=10)
    got = np.frombuffer(answer.raw_output_contents[0], np.float32)
    r = httpx.post(rest_url + payload.path, content=payload.body, headers=payload.headers, timeout=10)
    r.raise_for_status()
    head = int(r.headers["Inference-Header-Content-Length"])
    want = np.frombuffer(r.content[head:], np.float32)
    if not np.array_equal(got, want):
        raise SystemExit(f"error: gRPC and REST disagree: {got} vs {want}")


def run_h2load(url: str, body: bytes, *, concurrency: int, seconds: int, path: str = GRPC_PATH) -> dict[str, float]:
    """One h2load run of the RPC at ``path``; figures from its per-request log (status 200 only)."""
    h2load = shutil.which("h2load")
    if h2load is None:
        raise SystemExit("error: h2load not found: apt-get install nghttp2-client")
    with tempfile.TemporaryDirectory(prefix="modelpress-h2load-") as tmp:
        data, log = Path(tmp) / "body", Path(tmp) / "log"
        data.write_bytes(grpc_frame(body))
        argv = [h2load, "-c", str(concurrency), "-m", "1", "-t", "1", "-D", str(seconds), "--warm-up-time", "2",
                "-d", str(data), "-H", "content-type: application/grpc", "-H", "te: trailers",
                f"--log-file={log}", url + path]  # fmt: skip
        done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
        if done.returncode != 0:
            raise SystemExit(f"error: h2load failed: {done.stderr.strip() or done.stdout.strip()}")
        rows = [line.split("\t") for line in log.read_text().splitlines() if line.strip()]
    ok = sorted(int(r[2]) / 1000 for r in rows if r[1] == "200")
    failed = sum(1 for r in rows if r[1] != "200")
    return {"requests": len(ok), "errors": failed, "rps": len(ok) / seconds,
            "p50_ms": float(np.percentile(ok, 50)), "p99_ms": float(np.percentile(ok, 99))}  # fmt: skip


GO_CLIENT_SOURCE = Path(__file__).parent / "grpc_go_load" / "main.go"
DEBIAN_GOPATH = Path("/usr/share/gocode")  # where golang-google-grpc-dev puts grpc-go's sources


def build_go_client(directory: Path) -> Path:
    """``benchmarks/grpc_go_load`` built into ``directory`` with Debian's grpc-go, offline (SystemExit if not)."""
    go = shutil.which("go")
    if go is None or not (DEBIAN_GOPATH / "src" / "google.golang.org" / "grpc").is_dir():
        raise SystemExit("error: --go-client needs Go and grpc-go: apt-get install golang-go golang-google-grpc-dev")
    binary = directory / "grpc-go-load"
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(directory), "GO111MODULE": "off",
           "GOPATH": str(DEBIAN_GOPATH), "GOCACHE": str(directory / "cache")}  # fmt: skip
    done = subprocess.run([go, "build", "-o", str(binary), str(GO_CLIENT_SOURCE)], env=env, capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"error: building {GO_CLIENT_SOURCE} failed: {done.stderr.strip()}")
    return binary


def run_go_client(binary: Path, target: str, body: bytes, *, concurrency: int, seconds: int) -> dict[str, float]:
    """One run of the grpc-go load generator: a deadline on every call, figures from its own latencies."""
    with tempfile.TemporaryDirectory(prefix="modelpress-grpc-go-") as tmp:
        data = Path(tmp) / "request.pb"
        data.write_bytes(body)  # grpc-go frames it itself
        argv = [str(binary), "-addr", target, "-body", str(data), "-c", str(concurrency), "-d", str(seconds),
                "-warmup", "2", "-timeout", "10s"]  # fmt: skip
        done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    if done.returncode != 0:
        raise SystemExit(f"error: the grpc-go client failed: {done.stderr.strip() or done.stdout.strip()}")
    summary = json.loads(done.stdout)
    return {key: summary[key] for key in ("requests", "errors", "rps", "p50_ms", "p99_ms")}


def run_rest(url: str, payload: Payload, *, concurrency: int, seconds: int) -> dict[str, float]:
    step = run_wrk(url, payload, concurrency=concurrency, seconds=seconds)
    return {"requests": step.requests, "errors": step.errors, "rps": step.throughput_rps,
            "p50_ms": step.p50_ms or 0.0, "p99_ms": step.p99_ms or 0.0}  # fmt: skip


def grpc_outcomes(url: str, model: str) -> dict[str, float]:
    """The server's count of gRPC requests by outcome (success, client_error, server_error, rejected).

    h2load resets the streams still in flight when its duration ends; the server counts such a cancelled call
    as the client's (client_error), so up to ``concurrency`` of those per step are expected.
    """
    text = httpx.get(url + "/metrics", timeout=10).text
    found: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("modelpress_requests_total{") and 'protocol="grpc"' in line and f'model="{model}"' in line:
            outcome = line.split('outcome="', 1)[1].split('"', 1)[0]
            found[outcome] = found.get(outcome, 0.0) + float(line.rsplit(" ", 1)[1])
    return found


def client_cpu_seconds() -> float:
    """User + system CPU of this process's finished children: the load generators (the server is still running)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def loop_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process's main thread, where uvicorn runs the event loop (and gRPC with it)."""
    return cpu_seconds(pid, thread=pid)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repository", type=Path, required=True)
    parser.add_argument("--model", default="digits")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads (as side_by_side)")
    parser.add_argument("--json", type=Path, default=None, help="also write every step's figures here")
    parser.add_argument("--live", action="store_true",
                        help="also drive gRPC ServerLive each round (an RPC that does no inference): the loop "
                        "thread's cost per call of grpc-python itself, to set against ModelInfer's")  # fmt: skip
    parser.add_argument("--go-client", action="store_true",
                        help="also drive ModelInfer from grpc-go with a deadline on every call (needs golang-go "
                        "and golang-google-grpc-dev)")  # fmt: skip
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                        help="a setting of the server, e.g. MODELPRESS_ALLOW_SPINNING=false (repeatable)")  # fmt: skip
    args = parser.parse_args()
    manifest = latest_manifest(args.repository, args.model)
    if manifest is None:
        raise SystemExit(f"error: no model {args.model!r} in {args.repository}")
    spec = manifest.inputs[0]
    sample = np.random.default_rng(0).standard_normal((1, *[max(d, 1) for d in spec.shape[1:]])).astype(np.float32)
    payload = v2_binary(args.model, spec.name, sample, output=manifest.outputs[0].name)
    body = grpc_body(args.model, spec.name, sample)
    port, grpc_port = free_port(), free_port()
    env = {"MODELPRESS_INTRA_OP_THREADS": str(args.threads), "MODELPRESS_INTER_OP_THREADS": "1",
           "MODELPRESS_LOG_LEVEL": "warning", "MODELPRESS_GRPC_PORT": str(grpc_port)}  # fmt: skip
    env |= dict(item.split("=", 1) for item in args.env)
    argv = python_module("modelpress.serving", "--repository", str(args.repository), "--port", str(port))
    url, grpc_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{grpc_port}"
    steps: list[dict] = []
    tools = tempfile.TemporaryDirectory(prefix="modelpress-grpc-go-build-")
    go_client = build_go_client(Path(tools.name)) if args.go_client else None
    with tools, running_server(argv, port, env=env) as proc:
        check_same_answer(f"127.0.0.1:{grpc_port}", url, body, payload)
        for round_ in range(args.rounds):
            order = ["rest", "grpc"] if round_ % 2 == 0 else ["grpc", "rest"]
            order += ["grpc-go"] if go_client else []
            order += ["grpc-live"] if args.live else []
            for protocol in order:
                before, loop_before, metrics_before = cpu_seconds(proc.pid), loop_cpu_seconds(proc.pid), scrape(url)
                client_before = client_cpu_seconds()
                if protocol == "rest":
                    step = run_rest(url, payload, concurrency=args.concurrency, seconds=args.seconds)
                elif protocol == "grpc":
                    step = run_h2load(grpc_url, body, concurrency=args.concurrency, seconds=args.seconds)
                elif protocol == "grpc-go" and go_client is not None:
                    target = f"127.0.0.1:{grpc_port}"
                    step = run_go_client(go_client, target, body, concurrency=args.concurrency, seconds=args.seconds)
                else:  # an empty ServerLiveRequest: a frame of zero bytes
                    step = run_h2load(grpc_url, b"", concurrency=args.concurrency, seconds=args.seconds, path=LIVE_PATH)
                # CPU over the step (warm-up included for both tools), per counted request.
                counted = max(step["requests"], 1)
                step["cpu_us_per_req"] = (cpu_seconds(proc.pid) - before) / counted * 1e6
                step["loop_cpu_us_per_req"] = (loop_cpu_seconds(proc.pid) - loop_before) / counted * 1e6
                # The load generator shares the cores: a heavier client leaves the server less of them.
                step["client_cpu_us_per_req"] = (client_cpu_seconds() - client_before) / counted * 1e6
                step["rows_per_batch"] = step_split(metrics_before, scrape(url)).get("mean_batch_rows", 0.0)
                step |= {"round": round_ + 1, "protocol": protocol}
                steps.append(step)
                print(f"round {round_ + 1}/{args.rounds} {protocol}: {step['rps']:.0f} req/s, "
                      f"p50 {step['p50_ms']:.2f} ms, p99 {step['p99_ms']:.2f} ms", flush=True)  # fmt: skip
        outcomes = grpc_outcomes(url, args.model)
    if args.json:
        args.json.write_text(json.dumps({"steps": steps, "grpc_outcomes": outcomes}, indent=2))
    print(to_markdown(steps, args.concurrency))
    print(f"\ngRPC requests by outcome, as the server counted them: {outcomes}")
    if outcomes.get("server_error") or outcomes.get("rejected"):
        raise SystemExit("error: the server failed or rejected gRPC requests: the gRPC figures include errors")


def to_markdown(steps: list[dict], concurrency: int) -> str:
    lines = [f"concurrency {concurrency}", "",
             "| round | protocol | req/s | p50 ms | p99 ms | server CPU µs/req | loop thread µs/req | rows/run "
             "| client CPU µs/req |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for s in steps:
        latency = f"{s['p50_ms']:.2f} | {s['p99_ms']:.2f}"
        cpu = f"{s['cpu_us_per_req']:.0f} | {s['loop_cpu_us_per_req']:.0f} | {s['rows_per_batch']:.1f}"
        lines.append(f"| {s['round']} | {s['protocol']} | {s['rps']:.0f} | {latency} | {cpu} | "
                     f"{s['client_cpu_us_per_req']:.0f} |")  # fmt: skip
    by = {p: [s for s in steps if s["protocol"] == p] for p in ("rest", "grpc", "grpc-go")}
    lines.append("")
    for client in ("grpc", "grpc-go"):
        if not by[client]:
            continue
        ratio = [g["rps"] / r["rps"] for g, r in zip(by[client], by["rest"], strict=True)]
        p99 = [g["p99_ms"] / r["p99_ms"] for g, r in zip(by[client], by["rest"], strict=True)]
        lines.append(f"{client} / REST throughput per round: {', '.join(f'{x:.2f}' for x in ratio)} "
                     f"(median {statistics.median(ratio):.2f}); p99: {', '.join(f'{x:.2f}' for x in p99)} "
                     f"(median {statistics.median(p99):.2f})")  # fmt: skip
    protocols = ("rest", "grpc", "grpc-go", "grpc-live")
    loop = {p: [s["loop_cpu_us_per_req"] for s in steps if s["protocol"] == p] for p in protocols}
    lines.append("Loop thread µs per request, median of the rounds: " + ", ".join(
        f"{p} {statistics.median(v):.0f}" for p, v in loop.items() if v))  # fmt: skip
    return "\n".join(lines)


if __name__ == "__main__":
    main()
