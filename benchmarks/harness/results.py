"""Writing what a benchmark measured: results JSON, Markdown tables, generated docs pages. Each is written atomically
(a temporary sibling renamed into place), so a run that is interrupted or fails midway leaves the previous file
whole, never half of a new one for the docs generators to read next."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rosberta_onnx import atomic_file, write_json_atomic

__all__ = ["save"]


def save(path: Path, content: Any) -> Path:
    """``content`` to ``path`` (its folder made if missing): a ``str`` as UTF-8 text, anything else as indented
    JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        with atomic_file(path, "w") as f:
            f.write(content)
        return path
    return write_json_atomic(path, content)
