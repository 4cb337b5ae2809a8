"""Entry point of the ``modelpress`` command.

Each verb lives in ``modelpress/commands/<verb>.py``, whose top level imports nothing heavier than typer:
the stage (torch, onnx, onnxruntime) is imported inside the command, so ``modelpress serve`` never loads
torch and ``--help`` is instant.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import typer

import modelpress.commands
from modelpress.errors import USAGE_EXIT_CODE
from modelpress.extras import missing_extra_message

HELP = "modelpress: train, compress, export and serve models — one tool from training to serving."


def build_app() -> typer.Typer:
    """Collect every command module's ``register(app)`` into one Typer app."""
    app = typer.Typer(help=HELP, no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
    for info in sorted(pkgutil.iter_modules(modelpress.commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"modelpress.commands.{info.name}")
        module.register(app)
    return app


def main() -> None:
    try:
        build_app()()
    except ModuleNotFoundError as e:
        # A verb's stage needs an extra this install lacks: say which, like any other bad input (exit code 2).
        message = missing_extra_message(e)
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        sys.exit(USAGE_EXIT_CODE)
