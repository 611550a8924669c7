"""What this CPU can do for int8, and which variant is fastest here (measured once, cached).

``variant="auto"`` must never pick a variant that is slower than fp32 on the machine it runs on. The
int8 kernels' speed depends on the instruction set (AMX / AVX-512 VNNI / AVX-VNNI multiply U8xS8
natively; plain AVX2 emulates it with 16-bit intermediates that can saturate), on the thread count,
on the engine (onnxruntime or OpenVINO) and its build, so the decision is measured, not assumed: one
short alternating timing of fp32 and every gated int8 variant the first time an artifact is loaded with
``auto``, cached next to the artifact (or in ``~/.cache/rosberta-onnx`` when that folder is read-only).
``ROSBERTA_AUTOTUNE=0`` or ``autotune=False`` skips the measurement and trusts the quality gate alone.
"""

from __future__ import annotations

import functools
import json
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["CpuInfo", "cpu_info", "cpu_flags", "cpu_isa", "int8_native", "fastest_variant"]

CACHE_NAME = ".autotune.json"


def _uarch(vendor: str, family: int | None, model: int | None) -> str:
    """The core generation where /proc/cpuinfo's family/model tell it; '' when unknown. int8 speed differs by
    generation within one brand name ("AMD EPYC" is Zen 3, 4 or 5: Zen 5 runs AVX-512 at full width)."""
    if family is None or model is None:
        return ""
    if vendor == "AuthenticAMD":
        if family == 0x1A:
            return "Zen 5"
        if family == 0x19:
            return "Zen 4" if model in range(0x10, 0x20) or model in range(0x60, 0x80) or model in range(0xA0, 0xB0) \
                else "Zen 3"
        if family == 0x17:
            return "Zen 2" if model >= 0x30 else "Zen/Zen+"
    if vendor == "GenuineIntel" and family == 6:
        return {0x55: "Skylake/Cascade Lake-SP", 0x6A: "Ice Lake-SP", 0x8F: "Sapphire Rapids", 0xCF: "Emerald Rapids",
                0xAD: "Granite Rapids", 0xAF: "Sierra Forest"}.get(model, "")
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
        isa = [label for flag, label in (("avx512_vnni", "AVX-512 VNNI"), ("avx_vnni", "AVX-VNNI"),
                                         ("avx512_bf16", "AVX-512 BF16"), ("amx_int8", "AMX-INT8"),
                                         ("amx_bf16", "AMX-BF16")) if flag in self.flags]
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

    return CpuInfo(vendor=fields.get("vendor_id", ""),
                   model_name=fields.get("model name") or platform.processor() or platform.machine(),
                   family=number("cpu family"), model=number("model"),
                   flags=frozenset(fields.get("flags", "").split()))


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


def _cache_paths(folder: Path, key: str) -> list[Path]:
    home = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "rosberta-onnx"
    return [folder / CACHE_NAME, home / f"autotune-{key[:16]}.json"]


def fastest_variant(folder: Path, candidates: dict[str, str], *, threads: int, make_session, streams: int = 1,
                    seq: int = 64, batch: int = 4, rounds: int = 5) -> tuple[dict, dict[str, object]]:
    """Time each of ``candidates`` (variant name -> sha256 of its model file; fp32 among them) and pick the fastest.

    Returns ``({"choice": name, "ms": {name: median ms}, "cached": bool, "cache": path, ...}, sessions)``;
    ``sessions`` holds the sessions opened for the measurement (none when the verdict came from the cache),
    so the caller can keep the chosen one instead of loading it twice.
    """
    import hashlib

    import onnxruntime as ort

    from .openvino_engine import openvino_version

    key_fields = {"candidates": dict(sorted(candidates.items())), "cpu": cpu_info().model_name, "threads": threads,
                  "streams": streams, "onnxruntime": ort.__version__, "openvino": openvino_version(),
                  "shape": [batch, seq]}
    digest = hashlib.sha256(json.dumps(key_fields, sort_keys=True).encode()).hexdigest()
    for path in _cache_paths(folder, digest):
        try:
            data = json.loads(path.read_text())
            if data.get("key") == key_fields and data["decision"]["choice"] in candidates:
                return {**data["decision"], "cached": True, "cache": str(path)}, {}
        except (OSError, ValueError, KeyError, TypeError):
            continue
    sessions = {name: make_session(name) for name in candidates}
    ids = np.full((batch, seq), 5, dtype=np.int64)
    ids[:, 0], ids[:, -1] = 0, 2
    feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
    times: dict[str, list[float]] = {name: [] for name in sessions}
    for s in sessions.values():
        s.run(None, feeds)  # warm-up
    for _ in range(rounds):  # alternate, so drift on a shared machine hits all alike
        for name, s in sessions.items():
            t = time.perf_counter()
            s.run(None, feeds)
            times[name].append(time.perf_counter() - t)
    ms = {name: float(np.median(t)) * 1e3 for name, t in times.items()}
    decision = {"choice": min(ms, key=ms.get), "ms": ms, "measured": time.strftime("%Y-%m-%dT%H:%M:%S")}
    from .manifest import write_json_atomic

    for path in _cache_paths(folder, digest):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_json_atomic(path, {"key": key_fields, "decision": decision})
            return {**decision, "cached": False, "cache": str(path)}, sessions
        except OSError:
            continue
    return {**decision, "cached": False, "cache": None}, sessions
