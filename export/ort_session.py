"""ONNX Runtime sessions for checks and measurements: CPU provider, bounded threads, quiet logs."""

from __future__ import annotations

from pathlib import Path


def cpu_session(
    model_path: Path,
    *,
    threads: int = 1,
    optimized_path: Path | None = None,
    level: str = "all",
    external_data: str | None = None,
):
    """Create a CPU ``InferenceSession``.

    With ``optimized_path``, ORT also saves the optimised graph there, its weights in the file named
    ``external_data`` beside it when given (models that had external data keep it).
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # Spinning workers burn CPU other jobs on the machine need (checks run beside training and other exports).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors only: the checks report what matters
    options.graph_optimization_level = {
        "disabled": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[level]
    if optimized_path is not None:
        options.optimized_model_filepath = str(optimized_path)
        if external_data:
            options.add_session_config_entry("session.optimized_model_external_initializers_file_name", external_data)
            options.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes", "0")
    return ort.InferenceSession(str(model_path), sess_options=options, providers=["CPUExecutionProvider"])
