r"""Load time and peak memory of loading one bare ``model.onnx`` (no manifest.json), build against build.

Each load runs in a fresh process (``--child``) started by the interpreter of the build being measured, so two
checkouts (each with its own ``.venv``) are compared on the same file, alternating, ``--rounds`` times::

    python -m modelpress.benchmarks.bare_load /tmp/bare-bench/minilm/1 \\
        --build before=/work/main/.venv/bin/python --build after=.venv/bin/python --rounds 5

A child loads one version as the server does (``repository.build_version``: manifest, file check, runtime,
session) without warm-up, and reports the seconds that took, the ``InferenceSession``s it built, and
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
    """One load in this process with the figures: the server's own ``build_version`` where the build has it.

    ``signature_session`` (or a build without ``build_version``): the load path before the change, the manifest
    from ``manifest_for`` (a session made only to read the graph, then the serving one) and the files verified.
    """
    import onnxruntime as ort

    from modelpress.serving import graph_manifest, repository
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
    factory = onnx_runtime_factory(Settings(repository=version_dir.parent.parent, warmup_runs=0))
    name = version_dir.parent.name
    build_version = getattr(repository, "build_version", None)  # the server's own load, where the build has it
    before = _rss_bytes()
    start = time.perf_counter()
    if build_version is not None and not signature_session:
        build_version(name, version_dir, factory)
    else:  # the load path before the change: a throwaway signature session, the file hashed twice
        manifest = graph_manifest.manifest_for(name, version_dir)
        verify_files(manifest, version_dir)
        factory(manifest, version_dir).load()
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
    # The children run from "/": an interpreter given as a relative path is the caller's, resolved here.
    builds = {label: str(Path(python).absolute()) if "/" in python else python for label, python in builds.items()}
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
