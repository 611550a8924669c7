"""Facts about the machine a benchmark ran on: CPU model and the flags that decide int8/bf16 speed."""

from __future__ import annotations

import importlib.metadata as md
import os
import platform
from pathlib import Path

__all__ = ["cpu_facts", "machine_facts", "describe"]

# Flags that change which kernels the runtimes pick: VNNI (int8 dot products), bf16 and AMX (tiles).
FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16", "avx512_fp16")
LIBRARIES = (
    "rosberta-onnx",
    "onnxruntime",
    "onnxruntime-gpu",
    "openvino",
    "torch",
    "transformers",
    "sentence-transformers",
    "optimum",
    "fastembed",
    "tokenizers",
    "numpy",
    "matplotlib",
    "psutil",
)


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


def cpu_facts() -> dict:
    """The CPU named as every benchmark result names it: vendor, family/model, generation, int8 ISA, in words."""
    from rosberta_onnx.hardware import cpu_info

    cpu = cpu_info()
    return {
        "vendor": cpu.vendor,
        "family": cpu.family,
        "model": cpu.model,
        "microarchitecture": cpu.microarchitecture,
        "isa": cpu.isa,
        "description": cpu.describe(),
    }


def machine_facts() -> dict:
    """CPU model, ISA flags, cores, memory, GPU providers and library versions, as a JSON-able dict."""
    from rosberta_onnx.hardware import cpu_info, physical_cores
    from rosberta_onnx.session import cuda_available

    cpu = cpu_info()
    return {
        "cpu_model": cpu.model_name,
        "cpu": cpu_facts(),
        "cpu_flags": {f: f in cpu.flags for f in FLAGS},
        "hypervisor": "hypervisor" in cpu.flags,
        "logical_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "physical_cores": physical_cores(),
        "memory_gb": _memory_gb(),
        "os": f"{platform.system()} {platform.release()}",
        "cuda": cuda_available(),
        "versions": _versions(),
    }


def describe(m: dict) -> str:
    """One line for a README: 'AMD EPYC (AuthenticAMD family 25 model 17, Zen 4; AVX-512 VNNI, ..., no AMX),
    2 physical cores / 2 logical, 23.4 GB, no GPU, virtual machine; Linux ...'."""
    vm = ", virtual machine" if m.get("hypervisor") else ""
    gpu = ", CUDA GPU" if m.get("cuda") else ", no GPU"
    cores = f"{m['physical_cores']} physical cores / {m['logical_cpus']} logical"
    if "cpu" in m:
        return f"{m['cpu']['description']}, {cores}, {m['memory_gb']} GB{gpu}{vm}; {m['os']}"
    # results written before the CPU's family/model were recorded
    on = [
        f
        for f, v in m["cpu_flags"].items()
        if v and f in ("avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8", "amx_bf16")
    ]
    amx = "" if m["cpu_flags"].get("amx_tile") else "; no AMX"
    return f"{m['cpu_model']}, {cores} ({', '.join(on) or 'no VNNI/bf16/AMX'}{amx}), {m['memory_gb']} GB{gpu}{vm}; {m['os']}"
