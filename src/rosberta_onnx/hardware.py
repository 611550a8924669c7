"""What this machine's CPU is and can do for int8: one typed :class:`CpuInfo`, decided once, and the physical cores
this process may use.

The machine comes first (``x86_64``, ``aarch64``), then its instruction set from the source that speaks for the CPU
running this process: CPUID on x86 (through numpy's feature table), the kernel's hardware capabilities on ARM64.
``/proc/cpuinfo`` gives names, and flags only it lists (AMX, AVX-VNNI) when it agrees with the CPU on every flag both
know; an emulator or a container can show another machine's file (see :mod:`.cpu_probe`), and then it is set aside
and :attr:`CpuInfo.notes` says so.

The int8 instruction set, :attr:`CpuInfo.isa`, decides which int8 kernels onnxruntime runs and so which numbers a
quantised variant gives; an export records it beside each quantised variant's gate verdict, and that verdict holds
only where the ISA matches (:mod:`.trust`).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from . import cpu_probe

__all__ = [
    "CpuInfo",
    "cpu_info",
    "detect",
    "cpu_flags",
    "cpu_isa",
    "int8_native",
    "isa_words",
    "physical_cores",
]

# The int8 ISA ladder per machine, best first: (name, the flag that grants it).
_X86_ISAS = (
    ("amx", "amx_int8"),
    ("avx512_vnni", "avx512_vnni"),
    ("avx_vnni", "avx_vnni"),
    ("avx512", "avx512bw"),  # AVX-512 without VNNI (Skylake-SP): U8xS8 pairs through 16 bits, like AVX2
    ("avx2", "avx2"),
)
_ARM_ISAS = (("arm64_i8mm", "i8mm"), ("arm64_dotprod", "asimddp"), ("arm64_neon", "asimd"))
# How onnxruntime's U8xS8 int8 GEMM multiplies on each ISA: exact 32-bit dot products, or pairs of products summed
# into 16 bits first (vpmaddubsw), which saturate when both are large. ARM64 widens or uses udot/sdot/*mmla: exact.
_NATIVE_INT8 = {"amx", "avx512_vnni", "avx_vnni", "arm64_i8mm", "arm64_dotprod", "arm64_neon"}
_WORDS = {
    "amx": "AMX-INT8",
    "avx512_vnni": "AVX-512 VNNI",
    "avx_vnni": "AVX-VNNI",
    "avx512": "AVX-512 without VNNI",
    "avx2": "AVX2 without VNNI",
    "x86": "x86-64 without AVX2",
    "arm64_i8mm": "ARM64 NEON with dot product and i8mm",
    "arm64_dotprod": "ARM64 NEON with dot product, no i8mm",
    "arm64_neon": "ARM64 NEON, no dot product",
    "unknown": "unknown ISA",
}
# numpy's CPUID names -> Linux's /proc/cpuinfo flag names, for the flags both can tell
_NUMPY_X86 = {
    "AVX": "avx",
    "FMA3": "fma",
    "F16C": "f16c",
    "AVX2": "avx2",
    "AVX512F": "avx512f",
    "AVX512BW": "avx512bw",
    "AVX512VL": "avx512vl",
    "AVX512VNNI": "avx512_vnni",
    "AVX512BF16": "avx512_bf16",
    "AVX512FP16": "avx512_fp16",
}
_NUMPY_ARM = {"ASIMD": "asimd", "ASIMDHP": "asimdhp", "ASIMDDP": "asimddp", "ASIMDFHM": "asimdfhm", "SVE": "sve"}
# ARM's main part numbers (implementer 0x41) as /proc/cpuinfo gives them, for names; the ISA never depends on them
_ARM_PARTS = {
    0xD03: "Cortex-A53",
    0xD04: "Cortex-A35",
    0xD05: "Cortex-A55",
    0xD07: "Cortex-A57",
    0xD08: "Cortex-A72",
    0xD09: "Cortex-A73",
    0xD0A: "Cortex-A75",
    0xD0B: "Cortex-A76",
    0xD0C: "Neoverse-N1",
    0xD0D: "Cortex-A77",
    0xD40: "Neoverse-V1",
    0xD41: "Cortex-A78",
    0xD46: "Cortex-A510",
    0xD47: "Cortex-A710",
    0xD49: "Neoverse-N2",
    0xD4F: "Neoverse-V2",
    0xD80: "Cortex-A520",
    0xD81: "Cortex-A720",
    0xD84: "Neoverse-V3",
}
_ARM_VENDORS = {0x41: "ARM", 0x42: "Broadcom", 0x48: "HiSilicon", 0x51: "Qualcomm", 0x61: "Apple", 0xC0: "Ampere"}


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
            0x3C: "Haswell",
            0x3F: "Haswell-EP",
            0x4F: "Broadwell-EP",
            0x55: "Skylake/Cascade Lake-SP",
            0x6A: "Ice Lake-SP",
            0x8F: "Sapphire Rapids",
            0xCF: "Emerald Rapids",
            0xAD: "Granite Rapids",
            0xAF: "Sierra Forest",
        }.get(model, "")
    return ""


def isa_words(isa: str) -> str:
    """The ISA name in words: 'avx2' -> 'AVX2 without VNNI'."""
    return _WORDS.get(isa, isa)


@dataclass(frozen=True)
class CpuInfo:
    """What decides int8/bf16 speed and numbers here: the machine, who made the CPU, which generation, and the
    instruction set the CPU reports."""

    machine: str  # x86_64, aarch64, ... (cpu_probe.machine)
    vendor: str  # GenuineIntel, AuthenticAMD, ARM, Apple ... ('' where nothing says)
    model_name: str
    family: int | None  # x86 family/model from /proc/cpuinfo
    model: int | None
    flags: frozenset[str]  # features this CPU reports, by Linux's names (x86 flags, ARM64 Features)
    source: str = ""  # where the flags came from: "cpuid", "hwcap", "/proc/cpuinfo" or "" (nothing readable)
    notes: tuple[str, ...] = field(default=(), compare=False)  # where the sources disagree, in words

    @property
    def isa(self) -> str:
        """The int8-relevant instruction set: ``amx`` > ``avx512_vnni`` > ``avx_vnni`` > ``avx512`` > ``avx2`` >
        ``x86`` on x86-64; ``arm64_i8mm`` > ``arm64_dotprod`` > ``arm64_neon`` on ARM64; else ``unknown``."""
        return cpu_isa(set(self.flags), machine=self.machine)

    @property
    def microarchitecture(self) -> str:
        return _uarch(self.vendor, self.family, self.model)

    def describe(self) -> str:
        """'AMD EPYC (AuthenticAMD family 25 model 17, Zen 4; x86_64, AVX-512 VNNI, AVX-512 BF16, no AMX)'."""
        where = ""
        if self.family is not None:
            where = f"{self.vendor} family {self.family} model {self.model}"
            where += f", {self.microarchitecture}" if self.microarchitecture else ""
        isa = [self.machine] if self.machine else []
        if self.machine == "x86_64":
            isa += [
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
            if self.isa in ("avx2", "avx512", "x86"):
                isa.append(isa_words(self.isa))
            if self.flags and "amx_tile" not in self.flags:
                isa.append("no AMX")
        elif self.machine == "aarch64":
            isa.append(isa_words(self.isa).removeprefix("ARM64 "))
            isa += ["SVE"] * ("sve" in self.flags) + ["BF16"] * ("bf16" in self.flags)
        inside = "; ".join(x for x in (where, ", ".join(isa)) if x)
        name = f"{self.model_name} ({inside})" if inside else self.model_name
        return name + "".join(f" [{n}]" for n in self.notes)


def cpu_isa(flags: set[str] | None = None, *, machine: str | None = None) -> str:
    """The int8-relevant instruction set of ``flags`` on ``machine`` (default: this CPU's)."""
    if flags is None:
        return cpu_info().isa
    machine = machine if machine is not None else cpu_probe.machine()
    if machine == "x86_64":
        return next((name for name, flag in _X86_ISAS if flag in flags), "x86" if flags else "unknown")
    if machine == "aarch64":  # ARMv8-A always has Advanced SIMD; a missing listing still means NEON
        return next((name for name, flag in _ARM_ISAS if flag in flags), "arm64_neon")
    return "unknown"


def int8_native(isa: str) -> bool:
    """Whether onnxruntime's U8xS8 int8 products are exact on ``isa`` (no 16-bit saturation)."""
    return isa in _NATIVE_INT8


def _x86(proc: Mapping[str, str], feats: Mapping[str, bool] | None) -> CpuInfo:
    listed = frozenset(proc.get("flags", "").split())
    notes: list[str] = []
    if feats is None:
        flags, source = listed, "/proc/cpuinfo" if listed else ""
    else:
        reported = {flag for key, flag in _NUMPY_X86.items() if feats.get(key)}
        known = {flag for key, flag in _NUMPY_X86.items() if key in feats}
        extra = sorted((listed & known) - reported)
        agree = bool(listed) and not extra and not (reported - listed)
        # AMX and AVX-VNNI are not in numpy's table: taken from /proc/cpuinfo only where it describes this CPU
        flags, source = frozenset(reported | (listed - known if agree else set())), "cpuid"
        if listed and not agree:
            notes.append(
                "/proc/cpuinfo describes another CPU (it lists "
                + ", ".join(extra or sorted(reported - listed))
                + " against what this CPU reports, as under an emulator): its name and its flags are not used"
            )
    named = feats is None or not notes
    return CpuInfo(
        machine="x86_64",
        vendor=proc.get("vendor_id", "") if named else "",
        model_name=(proc.get("model name") if named else "") or "x86-64 CPU",
        family=_number(proc.get("cpu family")) if named else None,
        model=_number(proc.get("model")) if named else None,
        flags=flags,
        source=source,
        notes=tuple(notes),
    )


def _arm(proc: Mapping[str, str], hwcaps: frozenset[str] | None, feats: Mapping[str, bool] | None) -> CpuInfo:
    listed = frozenset(proc.get("Features", "").split())
    arm_file = "CPU part" in proc or bool(listed)
    notes: list[str] = []
    if hwcaps is not None:
        flags, source = hwcaps, "hwcap"
    elif arm_file:
        flags, source = listed, "/proc/cpuinfo"
    else:
        flags = frozenset(flag for key, flag in _NUMPY_ARM.items() if (feats or {}).get(key))
        source = "cpuid" if flags else ""
    if proc and not arm_file:
        notes.append("/proc/cpuinfo describes another machine (an x86 listing, as under qemu-user): not used")
    elif hwcaps is not None and listed and {"asimddp", "i8mm"} & (listed ^ hwcaps):
        notes.append("/proc/cpuinfo lists other int8 features than this CPU reports: its name is not used")
    vendor, name = "", ""
    if arm_file and not notes:
        implementer, part = _number(proc.get("CPU implementer")), _number(proc.get("CPU part"))
        vendor = _ARM_VENDORS.get(implementer or -1, f"implementer {proc.get('CPU implementer', '?')}")
        name = proc.get("model name") or (
            f"{vendor} {_ARM_PARTS[part]}"
            if implementer == 0x41 and part in _ARM_PARTS
            else f"{vendor} part {proc.get('CPU part', '?')}"
        )
    return CpuInfo("aarch64", vendor, name or "ARM64 CPU", None, None, flags, source, tuple(notes))


def _number(value: str | None) -> int | None:
    try:
        return int(value, 0) if value is not None else None
    except ValueError:
        return None


def detect(
    machine: str,
    proc: Mapping[str, str],
    *,
    numpy_features: Mapping[str, bool] | None = None,
    hwcaps: frozenset[str] | None = None,
) -> CpuInfo:
    """The CPU from the given sources (what :func:`cpu_info` reads; separate so that any machine can be described)."""
    if machine == "x86_64":
        return _x86(proc, numpy_features)
    if machine == "aarch64":
        return _arm(proc, hwcaps, numpy_features)
    return CpuInfo(machine, proc.get("vendor_id", ""), proc.get("model name") or machine, None, None, frozenset())


@functools.lru_cache(maxsize=1)
def cpu_info() -> CpuInfo:
    """This machine's CPU, decided once per process."""
    machine = cpu_probe.machine()
    return detect(
        machine,
        cpu_probe.proc_cpuinfo(),
        numpy_features=cpu_probe.numpy_features(),
        hwcaps=cpu_probe.arm_hwcaps() if machine == "aarch64" else None,
    )


def cpu_flags() -> set[str]:
    return set(cpu_info().flags)


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
