"""Import benchmark: a ResNet-18-architecture CNN exported to ONNX by torch.onnx, then ``modelpress import``.

    flock /tmp/modelpress-heavy.lock python -m modelpress.benchmarks.import_bench --out result.json

The network is torchvision's ResNet-18 layout (BasicBlock ×[2, 2, 2, 2], 1000 classes) written out here, with
random weights (torchvision does not install beside this torch, and nothing is downloaded). Calibration and
evaluation inputs are random normal images, so agreement figures say how faithfully each variant reproduces
this network, not accuracy on any dataset. PyTorch eager fp32 and ONNX Runtime on each variant are timed in
this one fresh process with the same thread count, interleaved round by round.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from modelpress.benchmarks.export_bench import interleaved_latency, machine


def resnet18(num_classes: int = 1000):
    """The ResNet-18 architecture of torchvision (same layers and shapes), randomly initialised."""
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.down = None
            if stride != 1 or cin != cout:
                self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = torch.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            return torch.relu(out + (x if self.down is None else self.down(x)))

    layers, cin = [], 64
    for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        layers += [Block(cin, cout, stride), Block(cout, cout, 1)]
        cin = cout
    return nn.Sequential(
        nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(3, 2, 1),
        *layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, num_classes),
    ).eval()  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--batch", type=int, default=8, help="second batch size timed besides 1")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    # Neither runtime may keep spinning threads after its call: they would steal the cores from the runner that
    # goes next (a first run with ORT's spinning pools made eager ResNet-18 12x slower than it is).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import onnxruntime as ort
    import torch

    torch.set_num_threads(args.threads)  # once, first: changing it later in a process slows eager calls
    torch.manual_seed(0)
    module = resnet18()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="import-bench-") as tmp:
        root = Path(tmp)
        print("exporting ResNet-18 (random init) with torch.onnx ...", flush=True)
        torch.onnx.export(module, (torch.randn(1, 3, 224, 224),), str(root / "resnet18.onnx"), dynamo=True,
                          input_names=["image"], output_names=["logits"],
                          dynamic_shapes=({0: torch.export.Dim("batch")},))  # fmt: skip
        np.savez(root / "calib.npz", image=rng.standard_normal((64, 3, 224, 224)).astype(np.float32))
        np.savez(root / "eval.npz", image=rng.standard_normal((128, 3, 224, 224)).astype(np.float32))
        command = [sys.executable, "-m", "modelpress", "import", str(root / "resnet18.onnx"), "-r", str(root / "repo"),
                   "-n", "resnet18", "--variants", "fp32,fp16,int8", "--calibration", str(root / "calib.npz"),
                   "--eval", str(root / "eval.npz"), "--task", "classification", "--force", "-q"]  # fmt: skip
        print("modelpress import ...", flush=True)
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        import_seconds = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"import failed: {done.stderr.strip()}")
        variants = {}
        for name in ("resnet18", "resnet18-fp16", "resnet18-int8"):
            version = root / "repo" / name / "1"
            manifest = json.loads((version / "manifest.json").read_text())
            variants[name] = {"manifest": manifest, "path": version / "model.onnx"}
        results: dict[str, object] = {
            "machine": machine(args.threads), "command": " ".join(command[1:]), "date": time.strftime("%Y-%m-%d"),
            "import_seconds": round(import_seconds, 1), "torch": torch.__version__, "onnxruntime": ort.__version__,
            "rows": {},
        }  # fmt: skip
        for batch in (1, args.batch):
            x = rng.standard_normal((batch, 3, 224, 224)).astype(np.float32)
            runners = {"pytorch-eager-fp32": _torch_runner(module, x)}
            for name, item in variants.items():
                runners[name] = _ort_runner(item["path"], x, args.threads)
            print(f"timing batch {batch}: {args.rounds} rounds × {args.calls} calls, interleaved ...", flush=True)
            latency = interleaved_latency(runners, args.rounds, args.calls)
            for name, ms in latency.items():
                row = results["rows"].setdefault(name, {})
                row[f"ms_batch{batch}"] = round(ms, 3)
        for name, item in variants.items():
            quality, size = item["manifest"]["quality"], item["manifest"]["size"]
            results["rows"][name].update(
                onnx_bytes=size["onnx_bytes"], gzip_bytes=size["gzip_bytes"],
                top1_agreement=quality.get("top1_agreement"), max_abs_diff=quality.get("max_abs_diff"),
                forced=quality.get("forced"), precision=item["manifest"]["precision"],
            )  # fmt: skip
        results["rows"]["pytorch-eager-fp32"]["parameters"] = sum(p.numel() for p in module.parameters())
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results["rows"], indent=2))


def _torch_runner(module, x: np.ndarray):
    import torch

    tensor = torch.from_numpy(x)

    def run() -> object:
        with torch.inference_mode():
            return module(tensor)

    return run


def _ort_runner(path: Path, x: np.ndarray, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda: session.run(None, {"image": x})


if __name__ == "__main__":
    main()
