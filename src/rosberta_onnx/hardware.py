"""What this CPU can do for int8, and whether int8 actually beats fp32 here (measured once, cached).

``variant="auto"`` must never pick a variant that is slower than fp32 on the machine it runs on. The
int8 kernels' speed depends on the instruction set (AMX / AVX-512 VNNI / AVX-VNNI multiply U8xS8
natively; plain AVX2 emulates it with 16-bit intermediates that can saturate), on the thread count
and on the onnxruntime build, so the decision is measured, not assumed: one short alternating timing
of fp32 and int8 the first time an artifact is loaded with ``auto``, cached next to the artifact (or
in ``~/.cache/rosberta-onnx`` when that folder is read-only). ``ROSBERTA_AUTOTUNE=0`` or
``autotune=False`` skips the measurement and trusts the quality gate alone.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import numpy as np

__all__ = ["cpu_flags", "cpu_isa", "int8_native", "autotune_int8"]

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


def autotune_int8(folder: Path, fp32_file: str, int8_file: str, int8_sha: str, *, threads: int, make_session,
                  seq: int = 64, batch: int = 4, rounds: int = 5) -> tuple[dict, object | None]:
    """``({"int8_faster": bool, "fp32_ms": .., "int8_ms": .., "cached": bool, ...}, int8 session or None)``.

    The int8 session is returned when it had to be opened for the measurement, so the caller can keep it.
    """
    import onnxruntime as ort

    key_fields = {"int8_sha256": int8_sha, "cpu": _cpu_model(), "threads": threads, "onnxruntime": ort.__version__,
                  "shape": [batch, seq]}
    key = json.dumps(key_fields, sort_keys=True)
    import hashlib

    digest = hashlib.sha256(key.encode()).hexdigest()
    for path in _cache_paths(folder, digest):
        try:
            data = json.loads(path.read_text())
            if data.get("key") == key_fields:
                return {**data["decision"], "cached": True, "cache": str(path)}, None
        except (OSError, ValueError, KeyError, TypeError):
            continue
    fp32, int8_session = make_session(fp32_file), make_session(int8_file)
    ids = np.full((batch, seq), 5, dtype=np.int64)
    ids[:, 0], ids[:, -1] = 0, 2
    feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
    times = {"fp32": [], "int8": []}
    for s in (fp32, int8_session):
        s.run(None, feeds)  # warm-up
    for _ in range(rounds):  # alternate, so drift on a shared machine hits both alike
        for name, s in (("fp32", fp32), ("int8", int8_session)):
            t = time.perf_counter()
            s.run(None, feeds)
            times[name].append(time.perf_counter() - t)
    f, i = float(np.median(times["fp32"])) * 1e3, float(np.median(times["int8"])) * 1e3
    decision = {"int8_faster": i < f, "fp32_ms": f, "int8_ms": i, "measured": time.strftime("%Y-%m-%dT%H:%M:%S")}
    from .manifest import write_json_atomic

    for path in _cache_paths(folder, digest):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_json_atomic(path, {"key": key_fields, "decision": decision})
            return {**decision, "cached": False, "cache": str(path)}, int8_session
        except OSError:
            continue
    return {**decision, "cached": False, "cache": None}, int8_session
