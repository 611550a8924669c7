"""Memory an export needs, checked before the checkpoint is loaded: an export that runs out of memory is killed
minutes in (or takes the machine down with it); one refused up front costs a second and says what to do.

The need is a multiple of the checkpoint's fp32 weights, measured stage by stage on the full-size stand-in
(``python -m benchmarks.studies.export_cost``; the table is in docs/export-cost.md): the largest process of the
export holds at most :data:`PEAK_PER_WEIGHT_BYTE` times the weights, plus the Python, torch and onnxruntime
libraries themselves (:data:`BASE_BYTES`).
"""

from __future__ import annotations

from pathlib import Path

from rosberta_onnx import RosbertaError

__all__ = ["NotEnoughMemory", "available_bytes", "check_memory", "needed_bytes", "weight_bytes"]

BASE_BYTES = 600 * 1024**2  # the interpreter with torch, transformers and onnxruntime imported, before any model
# the largest process per byte of fp32 weights, every variant (measured: see the module's docstring)
PEAK_PER_WEIGHT_BYTE = 1.9  # full-size stand-in: 3.27 GB peak (writing int8) for 1.42 GB of weights
WEIGHT_FILES = ("*.safetensors", "pytorch_model*.bin")


class NotEnoughMemory(RosbertaError, MemoryError):
    """The machine has less memory available than the export needs; the message names the figures and the fixes."""


def weight_bytes(folder: Path) -> int:
    """The checkpoint's weight files, in bytes (fp32 checkpoints: the fp32 weights)."""
    return sum(f.stat().st_size for pattern in WEIGHT_FILES for f in Path(folder).glob(pattern))


def needed_bytes(weights: int) -> int:
    return int(BASE_BYTES + PEAK_PER_WEIGHT_BYTE * weights)


def _read_int(path: str) -> int | None:
    try:
        text = Path(path).read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def available_bytes() -> int | None:
    """Memory this process may still use: the kernel's MemAvailable, or less where a cgroup (a container, a CI
    runner) limits it; None where neither can be read (not Linux)."""
    avail = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                avail = int(line.split()[1]) * 1024
    except OSError:
        pass
    for limit_file, usage_file in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),  # cgroup v2
        ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),  # v1
    ):
        limit, used = _read_int(limit_file), _read_int(usage_file)
        if limit is not None and used is not None and limit < 1 << 60:
            room = max(0, limit - used)
            avail = room if avail is None else min(avail, room)
            break
    return avail


def check_memory(need: int, what: str) -> None:
    """Raise :class:`NotEnoughMemory` if less than ``need`` bytes are available (nothing is checked where the
    figure cannot be read)."""
    avail = available_bytes()
    if avail is not None and avail < need:
        gb = lambda n: f"{n / 1024**3:.1f} GB"
        raise NotEnoughMemory(
            f"not enough memory for {what}: it needs about {gb(need)} at its peak and {gb(avail)} are available. "
            f"Close other programs or export on a machine with more memory; nothing was written"
        )
