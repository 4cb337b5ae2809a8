"""Keep the CLI's output readable while the ONNX exporters run."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator

EXPORTER_LOGGERS = ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript")


@contextlib.contextmanager
def quiet_exporters(*extra_loggers: str) -> Iterator[None]:
    """Silence the exporters' progress prints, warnings and log records below ERROR for the block.

    The exporters print progress and warn about things that do not concern the user (tracer warnings on
    constant-folded code, optional packages such as torchvision); failures still raise.
    """
    loggers = [logging.getLogger(name) for name in (*EXPORTER_LOGGERS, *extra_loggers)]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
