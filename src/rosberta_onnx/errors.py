"""Every error this package raises on purpose.

Each one subclasses a built-in so that ``except ValueError`` (or ``TypeError``,
``FileNotFoundError``) in user code keeps working::

    RosbertaError                                  base of everything below
    ├── ArtifactError(RosbertaError, ValueError)   a model folder that is missing, corrupt or incompatible
    │   └── ArtifactNotFoundError(…, FileNotFoundError)
    ├── VariantError(RosbertaError, ValueError)    a variant that is unknown, absent, failed its gate or unfit for the device
    ├── TaskError(RosbertaError, ValueError)       an unknown task name (lists the valid ones)
    ├── InputTypeError(RosbertaError, TypeError)   a text that is not a string (names index and type)
    ├── InputTooLongError(RosbertaError, ValueError)  an over-long text with truncate=False (names index and count)
    ├── InputFormatError(RosbertaError, ValueError)  an input file the CLI can't read (names file and line)
    └── MissingDependencyError(RosbertaError, ImportError)  an optional extra that is not installed

Messages say what is wrong, why, and how to fix it.
"""

from __future__ import annotations

from types import ModuleType

__all__ = [
    "RosbertaError",
    "ArtifactError",
    "ArtifactNotFoundError",
    "VariantError",
    "TaskError",
    "InputTypeError",
    "InputTooLongError",
    "InputFormatError",
    "MissingDependencyError",
    "require",
]


class RosbertaError(Exception):
    """Base class of every error raised by rosberta-onnx."""


class ArtifactError(RosbertaError, ValueError):
    """The model folder is missing a file, has a bad checksum, or a manifest this version can't read."""


class ArtifactNotFoundError(ArtifactError, FileNotFoundError):
    """A file or folder the artifact needs does not exist."""


class VariantError(RosbertaError, ValueError):
    """The requested variant can't be used here."""


class TaskError(RosbertaError, ValueError):
    """An unknown task / prompt name."""


class InputTypeError(RosbertaError, TypeError):
    """A text that is not a ``str``."""


class InputTooLongError(RosbertaError, ValueError):
    """A text longer than the model's max length while ``truncate=False``."""


class InputFormatError(RosbertaError, ValueError):
    """An input file (JSONL, text) that is not in the expected format."""


class MissingDependencyError(RosbertaError, ImportError):
    """An optional dependency is not installed."""


def require(module: str, *, extra: str, purpose: str) -> ModuleType:
    """Import an optional dependency, or raise an error naming the extra that provides it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise MissingDependencyError(
            f"{purpose} needs the Python package {module!r}, which is not installed. "
            f"Install it with: pip install 'rosberta-onnx[{extra}]'"
        ) from exc
