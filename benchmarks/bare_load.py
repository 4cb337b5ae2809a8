r"""Load time and peak memory of loading one bare ``model.onnx`` (no manifest.json), build against build.

Each load runs in a fresh process (``--child``) started by the interpreter of the build being measured, so two
checkouts (each with its own ``.venv``) are compared on the same file, alternating, ``--rounds`` times::

    python -m modelpress.benchmarks.bare_load /tmp/bare-bench/minilm/1 \\
        --build before=/work/main/.venv/bin/python --build after=.venv/bin/python --rounds 5

A child does what the server's load does for one version (``ModelRepository._build``: manifest, file check,
runtime, session) without warm-up, and reports the seconds that took, the ``InferenceSession``s it built, and
its resident memory before the load and at its peak (``ru_maxrss``).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path


def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize()


def child(version_dir: Path, signature_session: bool) -> dict[str, float]:
    """One load in this process, as the server's ``_build`` does it, with the figures.

    ``signature_session``: take the manifest from ``manifest_for`` (a session made only to read the graph, then
    the serving one: the load path before this change) in a build that has the new one.
    """
    import onnxruntime as ort

    from modelpress.serving import graph_manifest
    from modelpress.serving.app import onnx_runtime_factory
    from modelpress.serving.manifest import verify_files
    from modelpress.serving.settings import Settings

    sessions = []
    real = ort.InferenceSession

    class Counted(real):  # every parse of the model file by ONNX Runtime
        def __init__(self, *args: object, **kwargs: object) -> None:
            sessions.append(1)
            super().__init__(*args, **kwargs)

    ort.InferenceSession = Counted
    # The build before this change has no manifest_to_load: its load path called manifest_for.
    manifest_of = getattr(graph_manifest, "manifest_to_load", graph_manifest.manifest_for)
    if signature_session:
        manifest_of = graph_manifest.manifest_for
    factory = onnx_runtime_factory(Settings(repository=version_dir.parent.parent, warmup_runs=0))
    before = _rss_bytes()
    start = time.perf_counter()
    manifest = manifest_of(version_dir.parent.name, version_dir)
    verify_files(manifest, version_dir)
    runtime = factory(manifest, version_dir)
    runtime.load()
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    return {"seconds": seconds, "sessions": len(sessions), "rss_before": before, "peak_rss": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("version_dir", type=Path)
    parser.add_argument("--build", action="append", default=[], help="label=python interpreter of that build")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--signature-session", action="append", default=[], metavar="LABEL",
        help="this build loads through manifest_for (a throwaway signature session, as before the change)",
    )  # fmt: skip
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    version_dir = args.version_dir.resolve()
    if args.child:
        print(json.dumps(child(version_dir, bool(args.signature_session))))
        return
    builds = dict(b.split("=", 1) for b in args.build)
    runs: dict[str, list[dict[str, float]]] = {label: [] for label in builds}
    for round_ in range(1, args.rounds + 1):
        for label, python in builds.items():  # alternating: a noisy minute hits both builds
            out = subprocess.run(
                [python, str(Path(__file__).resolve()), str(version_dir), "--child"]
                + (["--signature-session", label] if label in args.signature_session else []),
                check=True, capture_output=True, text=True, cwd="/",
            )  # fmt: skip
            run = json.loads(out.stdout.strip().splitlines()[-1])
            runs[label].append(run)
            print(
                f"round {round_} {label:>8}: {run['seconds']:.2f} s, {run['sessions']} session(s), "
                f"RSS {run['rss_before'] / 2**20:.0f} -> peak {run['peak_rss'] / 2**20:.0f} MiB "
                f"(+{(run['peak_rss'] - run['rss_before']) / 2**20:.0f})",
                flush=True,
            )
    print("\nmedians:")
    for label, rs in runs.items():
        seconds = statistics.median(r["seconds"] for r in rs)
        peak = statistics.median(r["peak_rss"] for r in rs) / 2**20
        added = statistics.median(r["peak_rss"] - r["rss_before"] for r in rs) / 2**20
        print(f"  {label:>8}: {seconds:.2f} s, peak RSS {peak:.0f} MiB, peak added by the load {added:.0f} MiB")


if __name__ == "__main__":
    sys.exit(main())
