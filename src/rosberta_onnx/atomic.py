"""Writing a file so that no reader ever sees half of it: a temporary sibling, flushed to disk, renamed into place.

    with atomic_file(path, "wb") as f:
        f.write(data)            # an exception here leaves ``path`` as it was and no temporary file behind

Used for everything this project writes that others read while it runs: the manifest, the autotune cache, the
CLI's output files, Ray's shard files and records.

A path that already names something other than a regular file (``/dev/null``, ``/dev/stdout``, a named pipe) is
written in place: a rename would put a regular file where the device or pipe was (as root, ``-o /dev/null`` would
leave the machine without its ``/dev/null``), and a stream has no half-written state to protect.
"""

from __future__ import annotations

import json
import os
import stat
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_file", "atomic_path", "write_json_atomic"]


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside ``path`` for a writer that wants a file name (e.g. Parquet); on a clean exit the
    file there is fsynced and renamed to ``path``, otherwise it is removed."""
    path = Path(path)
    if _not_a_regular_file(path):
        yield path
        return
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)  # a power cut after the rename must not leave an empty "complete" file
        finally:
            os.close(fd)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _not_a_regular_file(path: Path) -> bool:
    """Whether ``path`` (its target, for a link) exists and is a device, pipe or socket: written in place."""
    try:
        mode = os.stat(path).st_mode
    except OSError:  # not there yet (or unreadable): the atomic route, which says what is wrong
        return False
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


@contextmanager
def atomic_file(path: str | os.PathLike, mode: str = "wb", *, encoding: str | None = None) -> Iterator[IO[Any]]:
    """An open file that becomes ``path`` only when the block ends without an exception."""
    if "b" not in mode and encoding is None:
        encoding = "utf-8"
    with atomic_path(path) as tmp, open(tmp, mode, encoding=encoding) as f:
        yield f


def write_json_atomic(path: str | os.PathLike, data: Any) -> Path:
    """``data`` as indented JSON (UTF-8, non-ASCII kept), written atomically; returns ``path``."""
    with atomic_file(path, "w") as f:
        json.dump(data, f, ensure_ascii=False, indent=2)
        f.write("\n")
    return Path(path)
