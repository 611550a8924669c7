"""The raw sources of what a CPU can do, each read once and returned as it is; :mod:`.hardware` decides from them.

- ``/proc/cpuinfo``: the kernel's listing, the only source of names (model name, family/model, ARM part numbers).
  It is a *file*, and not always this CPU's: qemu-user passes the host's through, so an emulated ARM64 or an
  emulated AVX2-only CPU reads an x86 AVX-512 host's listing, and a container can bind another one in.
- numpy's CPUID view (x86) or the kernel's hardware capabilities (``getauxval(AT_HWCAP)``, ARM64): what the CPU
  running this process reports, the same answer the int8 kernels get when they pick their code path.
"""

from __future__ import annotations

import ctypes
import functools
import platform

__all__ = ["machine", "proc_cpuinfo", "numpy_features", "arm_hwcaps"]

# Linux arch/arm64/include/uapi/asm/hwcap.h: the bits that matter for int8 and fp16/bf16 kernels.
_HWCAP = {0: "fp", 1: "asimd", 9: "fphp", 10: "asimdhp", 20: "asimddp", 22: "sve", 23: "asimdfhm"}
_HWCAP2 = {1: "sve2", 9: "svei8mm", 12: "svebf16", 13: "i8mm", 14: "bf16"}
_AT_HWCAP, _AT_HWCAP2 = 16, 26


def machine() -> str:
    """``x86_64`` or ``aarch64`` (Windows' AMD64 and macOS' arm64 named the Linux way), else as the OS says."""
    m = platform.machine().lower()
    return {"amd64": "x86_64", "x64": "x86_64", "arm64": "aarch64"}.get(m, m)


@functools.lru_cache(maxsize=1)
def proc_cpuinfo() -> dict[str, str]:
    """The first processor's block of /proc/cpuinfo (cores of one machine are alike); {} where there is none."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if not line.strip():
                    if fields:
                        break
                    continue
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return fields


@functools.lru_cache(maxsize=1)
def numpy_features() -> dict[str, bool] | None:
    """numpy's runtime CPU feature table (CPUID on x86, with the OS's register support checked), or None where
    this numpy does not expose it."""
    import importlib

    for module in ("numpy._core._multiarray_umath", "numpy.core._multiarray_umath"):  # numpy >= 2, numpy 1.x
        try:
            table = getattr(importlib.import_module(module), "__cpu_features__", None)
        except ImportError:
            continue
        if isinstance(table, dict):
            return dict(table)
    return None  # pragma: no cover - a numpy without the table


@functools.lru_cache(maxsize=1)
def arm_hwcaps() -> frozenset[str] | None:
    """The ARM64 features the kernel (or qemu-user, for an emulated CPU) hands this process, by Linux's names;
    None off Linux or where getauxval is missing."""
    try:
        getauxval = ctypes.CDLL(None).getauxval
    except (OSError, AttributeError):
        return None
    getauxval.restype, getauxval.argtypes = ctypes.c_ulong, [ctypes.c_ulong]
    caps, caps2 = getauxval(_AT_HWCAP), getauxval(_AT_HWCAP2)
    if not caps:
        return None
    names = {name for bit, name in _HWCAP.items() if caps >> bit & 1}
    return frozenset(names | {name for bit, name in _HWCAP2.items() if caps2 >> bit & 1})
