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

import json
import os
import platform
import time
from pathlib import Path

import numpy as np

__all__ = ["cpu_flags", "cpu_isa", "int8_native", "fastest_variant"]

CACHE_NAME = ".autotune.json"


def cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


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


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


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

    key_fields = {"candidates": dict(sorted(candidates.items())), "cpu": _cpu_model(), "threads": threads,
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
