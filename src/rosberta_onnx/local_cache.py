"""What the runtime measures about an artifact on this machine (which variant is fastest, whether a variant holds on
this CPU), remembered beside the artifact, or in ``~/.cache/rosberta-onnx`` where its folder is read-only.

Each entry is keyed by everything its value depends on (files, CPU, engine versions ...): change any of them and the
entry no longer matches, so it is measured again. Writes are atomic; two processes measuring at once both write
whole files, the last one wins.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .atomic import write_json_atomic

__all__ = ["LocalCache"]


def _digest(key: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


class LocalCache:
    """A small JSON map of ``key -> value`` for one artifact folder, stored as ``folder/name`` when the folder is
    writable, else under ``$XDG_CACHE_HOME/rosberta-onnx`` (named after the folder's path)."""

    def __init__(self, folder: Path, name: str) -> None:
        home = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "rosberta-onnx"
        where = hashlib.sha256(str(Path(folder).resolve()).encode()).hexdigest()[:16]
        self.paths = [Path(folder) / name, home / f"{name.strip('.').replace('.json', '')}-{where}.json"]

    def _entries(self, path: Path) -> dict[str, Any]:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return dict(data["entries"]) if isinstance(data, dict) and isinstance(data.get("entries"), dict) else {}
        except (OSError, ValueError):
            return {}

    def get(self, key: Mapping[str, Any]) -> tuple[Any, str] | None:
        """The value stored for ``key`` and the file it came from, or None."""
        digest = _digest(key)
        for path in self.paths:
            entry = self._entries(path).get(digest)
            if isinstance(entry, dict) and entry.get("key") == json.loads(json.dumps(key)) and "value" in entry:
                return entry["value"], str(path)
        return None

    def put(self, key: Mapping[str, Any], value: Any) -> str | None:
        """Store ``value`` under ``key`` in the first writable place; the file written, or None if none was."""
        for path in self.paths:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                entries = self._entries(path)
                entries[_digest(key)] = {"key": dict(key), "value": value}
                write_json_atomic(path, {"entries": entries})
                return str(path)
            except OSError:
                continue
        return None
