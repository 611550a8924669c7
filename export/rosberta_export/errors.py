"""The export side's own error (the runtime's errors cover the rest: bad files, unknown variants, missing extras)."""

from __future__ import annotations

from rosberta_onnx import RosbertaError

__all__ = ["ExportError"]


class ExportError(RosbertaError, ValueError):
    """The export was asked for something it cannot do (bad output path, variant); the message names the fix."""
