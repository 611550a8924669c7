"""What each export stage costs: wall time and peak resident memory, measured as the export runs.

The export's progress lines go through one :class:`Progress`; the places where a stage begins call
:meth:`Progress.stage`. A stage's peak is the largest resident set a sampler thread saw during it (every 20 ms), or
the process's high-water mark where that rose during the stage (exact: a new peak of the whole run), and the
largest child process it ran (the fusion and fp16 steps run in children, which report their own high-water mark:
a spawned child's ``ru_maxrss`` starts from its parent's peak on Linux, so the kernel's figure would overstate it).
The high-water mark is never reset, so ``/usr/bin/time -v`` still reports the whole run's peak.
"""

from __future__ import annotations

import os
import resource
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from .heap import release_freed_memory

__all__ = ["Progress", "StageCost", "high_water", "stage_table"]

_STATUS = Path("/proc/self/status")
_STATM = Path("/proc/self/statm")
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_SCALE = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux


def _rss() -> int:
    """The process's resident set now, in bytes (0 where /proc is missing)."""
    try:
        return int(_STATM.read_text().split()[1]) * _PAGE
    except OSError:
        return 0


def high_water() -> int:
    """The process's resident high-water mark in bytes."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * _SCALE


class _Sampler:
    """The largest resident set seen since the last :meth:`take`, sampled by a daemon thread."""

    def __init__(self, every: float = 0.02) -> None:
        self._max = _rss()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(every,), name="export-rss-sampler", daemon=True)
        self._thread.start()

    def _run(self, every: float) -> None:
        while not self._stop.wait(every):
            now = _rss()
            with self._lock:
                self._max = max(self._max, now)

    def take(self) -> int:
        """The peak since the last call; the next period starts from the resident set now."""
        now = _rss()
        with self._lock:
            peak, self._max = max(self._max, now), now
        return peak

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


@dataclass(frozen=True)
class StageCost:
    name: str
    seconds: float
    peak_bytes: int  # this process's largest resident set during the stage
    child_peak_bytes: int  # the largest child process of the stage, as it reported itself (0: none)

    @property
    def peak(self) -> int:
        return max(self.peak_bytes, self.child_peak_bytes)

    def as_dict(self) -> dict:
        return asdict(self)


class Progress:
    """The export's progress log (``progress(msg)`` logs ``msg (Ns)``) and its per-stage costs."""

    def __init__(self, log: Callable[[str], None]) -> None:
        self._log = log
        self._t0 = time.perf_counter()
        self._name: str | None = None
        self._began = self._t0
        self._child_peak = 0
        self._high_water = high_water()
        self._sampler: _Sampler | None = None
        self.costs: list[StageCost] = []

    def __call__(self, msg: str) -> None:
        self._log(f"{msg} ({time.perf_counter() - self._t0:.0f}s)")

    def stage(self, name: str, msg: str | None = None) -> None:
        """End the current stage and begin ``name`` (logging ``msg`` when given), with what the stages before it freed
        given back to the operating system (:func:`.heap.release_freed_memory`)."""
        self._close()
        release_freed_memory()
        if self._sampler is None:
            self._sampler = _Sampler()
        self._sampler.take()
        self._name, self._began = name, time.perf_counter()
        if msg is not None:
            self(msg)

    def child_peak(self, peak_bytes: int) -> None:
        """A child process of the current stage reported this high-water mark."""
        self._child_peak = max(self._child_peak, peak_bytes)

    def finish(self) -> list[StageCost]:
        """End the last stage (and the sampler); every stage's cost, in order."""
        self._close()
        self._name = None
        if self._sampler is not None:
            self._sampler.stop()
            self._sampler = None
        return list(self.costs)

    def _close(self) -> None:
        if self._name is None or self._sampler is None:
            return
        peak = self._sampler.take()
        mark = high_water()
        if mark > self._high_water:  # a new peak of the whole run, measured exactly by the kernel
            peak, self._high_water = max(peak, mark), mark
        child, self._child_peak = self._child_peak, 0
        self.costs.append(StageCost(self._name, round(time.perf_counter() - self._began, 1), peak, child))


def stage_table(costs: list[StageCost]) -> str:
    """The stages as a Markdown table: wall time, share of the total and peak resident memory."""
    total = sum(c.seconds for c in costs) or 1.0
    gb = lambda b: f"{b / 1e9:.2f}"
    lines = ["| stage | seconds | share | peak RSS (GB) | of it, a child process (GB) |", "|---|---:|---:|---:|---:|"]
    for c in costs:
        child = gb(c.child_peak_bytes) if c.child_peak_bytes else "–"
        lines.append(f"| {c.name} | {c.seconds:.1f} | {c.seconds / total:.0%} | {gb(c.peak)} | {child} |")
    peak = max((c.peak for c in costs), default=0)
    lines.append(f"| **whole export** | **{total:.1f}** | 100% | **{gb(peak)}** | |")
    return "\n".join(lines)
