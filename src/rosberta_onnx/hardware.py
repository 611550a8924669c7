"""What this machine's CPU is and can do for int8: one typed :class:`CpuInfo`, read once from /proc/cpuinfo,
and the physical cores this process may use."""

from __future__ import annotations

import functools
import os
import platform
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CpuInfo", "cpu_info", "cpu_flags", "cpu_isa", "int8_native", "physical_cores"]


def _uarch(vendor: str, family: int | None, model: int | None) -> str:
    """The core generation where /proc/cpuinfo's family/model tell it; '' when unknown. int8 speed differs by
    generation within one brand name ("AMD EPYC" is Zen 3, 4 or 5: Zen 5 runs AVX-512 at full width)."""
    if family is None or model is None:
        return ""
    if vendor == "AuthenticAMD":
        if family == 0x1A:
            return "Zen 5"
        if family == 0x19:
            return (
                "Zen 4"
                if model in range(0x10, 0x20) or model in range(0x60, 0x80) or model in range(0xA0, 0xB0)
                else "Zen 3"
            )
        if family == 0x17:
            return "Zen 2" if model >= 0x30 else "Zen/Zen+"
    if vendor == "GenuineIntel" and family == 6:
        return {
            0x55: "Skylake/Cascade Lake-SP",
            0x6A: "Ice Lake-SP",
            0x8F: "Sapphire Rapids",
            0xCF: "Emerald Rapids",
            0xAD: "Granite Rapids",
            0xAF: "Sierra Forest",
        }.get(model, "")
    return ""


@dataclass(frozen=True)
class CpuInfo:
    """What decides int8/bf16 speed here: who made the CPU, which generation, and its instruction set."""

    vendor: str  # /proc/cpuinfo vendor_id: GenuineIntel, AuthenticAMD, ... ('' off Linux)
    model_name: str
    family: int | None
    model: int | None
    flags: frozenset[str]

    @property
    def isa(self) -> str:
        """The int8-relevant instruction set: amx > avx512_vnni > avx_vnni > avx2 > other (unknown off Linux)."""
        return cpu_isa(set(self.flags))

    @property
    def microarchitecture(self) -> str:
        return _uarch(self.vendor, self.family, self.model)

    def describe(self) -> str:
        """'AMD EPYC (AuthenticAMD family 25 model 17, Zen 4; AVX-512 VNNI, AVX-512 BF16, no AMX)'."""
        where = ""
        if self.family is not None:
            where = f"{self.vendor} family {self.family} model {self.model}"
            where += f", {self.microarchitecture}" if self.microarchitecture else ""
        isa = [
            label
            for flag, label in (
                ("avx512_vnni", "AVX-512 VNNI"),
                ("avx_vnni", "AVX-VNNI"),
                ("avx512_bf16", "AVX-512 BF16"),
                ("amx_int8", "AMX-INT8"),
                ("amx_bf16", "AMX-BF16"),
            )
            if flag in self.flags
        ]
        if not isa and "avx2" in self.flags:
            isa = ["AVX2 (no VNNI)"]
        if self.flags and "amx_tile" not in self.flags:
            isa.append("no AMX")
        inside = "; ".join(x for x in (where, ", ".join(isa)) if x)
        return f"{self.model_name} ({inside})" if inside else self.model_name


@functools.lru_cache(maxsize=1)
def cpu_info() -> CpuInfo:
    """This machine's CPU, read once from /proc/cpuinfo (first processor; model name only off Linux)."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if not line.strip():
                    break  # the first processor's block is enough: cores of one machine are alike
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass

    def number(key: str) -> int | None:
        try:
            return int(fields[key])
        except (KeyError, ValueError):
            return None

    return CpuInfo(
        vendor=fields.get("vendor_id", ""),
        model_name=fields.get("model name") or platform.processor() or platform.machine(),
        family=number("cpu family"),
        model=number("model"),
        flags=frozenset(fields.get("flags", "").split()),
    )


def cpu_flags() -> set[str]:
    return set(cpu_info().flags)


def cpu_isa(flags: set[str] | None = None) -> str:
    """The int8-relevant instruction set: amx > avx512_vnni > avx_vnni > avx2 > other (unknown off Linux)."""
    flags = cpu_flags() if flags is None else flags
    if not flags:
        return "unknown"
    for name, flag in (("amx", "amx_int8"), ("avx512_vnni", "avx512_vnni"), ("avx_vnni", "avx_vnni"), ("avx2", "avx2")):
        if flag in flags:
            return name
    return "other"


def int8_native(isa: str) -> bool:
    """Whether U8 x S8 products run natively (no 16-bit saturation risk)."""
    return isa in ("amx", "avx512_vnni", "avx_vnni") or platform.machine().lower() in ("arm64", "aarch64")


def physical_cores() -> int:
    """Physical cores this process may run on (hyper-threads share one core's int8/fp32 units)."""
    try:
        cpus = os.sched_getaffinity(0)
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, (os.cpu_count() or 2) // 2)
    cores = set()
    for c in cpus:
        base = Path(f"/sys/devices/system/cpu/cpu{c}/topology")
        try:
            cores.add(
                (base.joinpath("physical_package_id").read_text().strip(), base.joinpath("core_id").read_text().strip())
            )
        except OSError:
            cores.add(("?", str(c)))
    return max(1, len(cores))
