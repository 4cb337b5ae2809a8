"""The one way to silence noisy libraries (exporters, optimizers, quantizers) around a block.

They print progress on stdout, warn about things that do not concern the user and log at INFO; the CLI shows
its own progress instead, and failures still raise.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator

EXPORTER_LOGGERS = ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript")


@contextlib.contextmanager
def quiet_libraries(*loggers: str, root: bool = False) -> Iterator[None]:
    """Silence stdout, warnings and log records below ERROR of ``loggers`` (and the root logger) for the block.

    Args:
        loggers: names of the libraries' loggers.
        root: also raise the root logger to ERROR (libraries that log on it, e.g. ONNX Runtime's quantizer).
    """
    chosen = [logging.getLogger(name) for name in loggers] + ([logging.getLogger()] if root else [])
    levels = [logger.level for logger in chosen]
    for logger in chosen:
        logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(chosen, levels, strict=True):
            logger.setLevel(level)


def quiet_exporters(*extra_loggers: str) -> contextlib.AbstractContextManager[None]:
    """:func:`quiet_libraries` for the ONNX exporters (tracer warnings, optional-package notices)."""
    return quiet_libraries(*EXPORTER_LOGGERS, *extra_loggers)
