"""Facts about the machine a benchmark ran on: CPU model and the flags that decide int8/bf16 speed."""

from __future__ import annotations

import importlib.metadata as md
import os
import platform
from pathlib import Path

__all__ = ["machine_facts", "describe"]

# Flags that change which kernels the runtimes pick: VNNI (int8 dot products), bf16 and AMX (tiles).
FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16", "avx512_fp16")
LIBRARIES = ("rosberta-onnx", "onnxruntime", "onnxruntime-gpu", "openvino", "torch", "transformers",
             "sentence-transformers", "optimum", "fastembed", "tokenizers", "numpy", "matplotlib", "psutil")


def _cpuinfo() -> tuple[str, set[str]]:
    model, flags = platform.processor() or platform.machine(), set()
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux: model only
        return model, flags
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and value.strip():
            model = value.strip()
        elif key == "flags" and not flags:
            flags = set(value.split())
    return model, flags


def _memory_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    return None


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = "not installed"
    return out


def machine_facts() -> dict:
    """CPU model, ISA flags, cores, memory, GPU providers and library versions, as a JSON-able dict."""
    from rosberta_onnx.session import cuda_available, physical_cores

    model, flags = _cpuinfo()
    return {
        "cpu_model": model,
        "cpu_flags": {f: f in flags for f in FLAGS},
        "hypervisor": "hypervisor" in flags,
        "logical_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "physical_cores": physical_cores(),
        "memory_gb": _memory_gb(),
        "os": f"{platform.system()} {platform.release()}",
        "cuda": cuda_available(),
        "versions": _versions(),
    }


def describe(m: dict) -> str:
    """One line for a README: 'AMD EPYC, 2 cores (avx512_vnni, avx512_bf16; no AMX), 23.4 GB, Linux ...'."""
    on = [f for f, v in m["cpu_flags"].items() if v and f in ("avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8", "amx_bf16")]
    amx = "" if m["cpu_flags"].get("amx_tile") else "; no AMX"
    vm = ", virtual machine" if m.get("hypervisor") else ""
    gpu = ", CUDA GPU" if m.get("cuda") else ", no GPU"
    return (f"{m['cpu_model']}, {m['physical_cores']} physical cores / {m['logical_cpus']} logical "
            f"({', '.join(on) or 'no VNNI/bf16/AMX'}{amx}), {m['memory_gb']} GB{gpu}{vm}; {m['os']}")
