"""ONNX Runtime sessions for checks and measurements: CPU provider, bounded threads, quiet logs."""

from __future__ import annotations

from pathlib import Path


def cpu_session(model_path: Path, *, threads: int = 2, optimized_path: Path | None = None, level: str = "all"):
    """Create a CPU ``InferenceSession``; with ``optimized_path``, ORT also saves the optimised graph there."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only: the checks report what matters
    options.graph_optimization_level = {
        "disabled": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[level]
    if optimized_path is not None:
        options.optimized_model_filepath = str(optimized_path)
    return ort.InferenceSession(str(model_path), sess_options=options, providers=["CPUExecutionProvider"])
