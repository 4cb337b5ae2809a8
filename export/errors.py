"""Errors of the export stage that are the user's to fix: each message names the problem."""

from __future__ import annotations

from modelpress.common.errors import UserError


class ExportError(UserError):
    """Bad input to the export stage (checkpoint, variant, repository, name, version, recipe section)."""


class VerificationError(ExportError):
    """An exported model failed a check (checker, ONNX Runtime load, outputs vs PyTorch); nothing is published."""


class AccuracyRefusedError(ExportError):
    """A compressed variant lost more quality than the tolerance allows; ``--force`` publishes it anyway."""
