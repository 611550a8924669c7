"""Resident memory of a process (Linux ``/proc``; psutil and ``ru_maxrss`` elsewhere): now, its peak, and a reset
of the peak. ``VmHWM`` rather than ``ru_maxrss``: after a vfork+exec the latter can carry the *parent's* peak."""

from __future__ import annotations

import sys
from pathlib import Path

__all__ = ["rss_mb", "peak_mb", "reset_peak"]


def _status_kb(field: str, pid: int | str = "self") -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def rss_mb(pid: int | str = "self") -> float:
    kb = _status_kb("VmRSS", pid)
    if kb is None:  # not Linux
        import psutil

        return psutil.Process().memory_info().rss / 2**20
    return kb / 1024


def peak_mb(pid: int | str = "self") -> float:
    kb = _status_kb("VmHWM", pid)
    if kb is None:  # not Linux: ru_maxrss is bytes on macOS, kB elsewhere
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 2**20 if sys.platform == "darwin" else peak / 1024
    return kb / 1024


def reset_peak() -> None:
    """Start the peak (VmHWM) over from the current RSS (Linux: writing 5 to /proc/self/clear_refs)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass  # elsewhere the peak keeps counting from process start
