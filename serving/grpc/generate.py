"""Generate the Python modules of ``open_inference.proto`` into ``serving/grpc/generated/`` (committed).

    python -m modelpress.serving.grpc.generate            # rewrite the committed modules
    python -m modelpress.serving.grpc.generate --check    # exit 1 when they differ from a fresh generation

Needs ``grpcio-tools`` (the ``dev`` extra). Two edits follow protoc's output, both so the modules work inside the
``modelpress`` package next to other users of the protocol:

- the service module imports the messages by their package path, not as a top-level ``open_inference_pb2``;
- the messages go into a descriptor pool of their own instead of protobuf's default pool: tritonclient registers
  the same ``inference.*`` names from its own ``grpc_service.proto`` there, and one process may hold both (a test,
  or a pipeline that serves and calls), which the default pool refuses as duplicate symbols.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROTO = HERE / "open_inference.proto"
OUT = HERE / "generated"
PACKAGE = "modelpress.serving.grpc.generated"
MODULES = ("open_inference_pb2.py", "open_inference_pb2_grpc.py")
_DEFAULT_POOL = "DESCRIPTOR = _descriptor_pool.Default().AddSerializedFile("
_OWN_POOL = "_POOL = _descriptor_pool.DescriptorPool()  # not the default pool: see modelpress.serving.grpc.generate\n"


def generate() -> dict[str, str]:
    """The generated modules' text by file name, after the two edits."""
    with tempfile.TemporaryDirectory() as tmp:
        # grpc_tools runs as a program, not imported: the serving images have no code generator.
        argv = [sys.executable, "-m", "grpc_tools.protoc", f"-I{HERE}", f"--python_out={tmp}",
                f"--grpc_python_out={tmp}", str(PROTO)]  # fmt: skip
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"error: protoc failed on {PROTO} (needs grpcio-tools): {done.stderr.strip()}")
        texts = {name: (Path(tmp) / name).read_text() for name in MODULES}
    messages = texts["open_inference_pb2.py"]
    if _DEFAULT_POOL not in messages:
        raise SystemExit("error: protoc's output changed shape: no default-pool registration to replace")
    texts["open_inference_pb2.py"] = messages.replace(
        _DEFAULT_POOL, _OWN_POOL + "DESCRIPTOR = _POOL.AddSerializedFile("
    )
    texts["open_inference_pb2_grpc.py"] = texts["open_inference_pb2_grpc.py"].replace(
        "import open_inference_pb2 as", f"from {PACKAGE} import open_inference_pb2 as"
    )
    return texts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="compare with the committed modules, write nothing")
    args = parser.parse_args(argv)
    texts = generate()
    if args.check:
        stale = [name for name, text in texts.items() if (OUT / name).read_text() != text]
        if stale:
            print(f"error: {', '.join(stale)} differ from {PROTO.name}: run python -m {__spec__.name}", file=sys.stderr)
            return 1
        return 0
    for name, text in texts.items():
        (OUT / name).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
