"""Which variant is fastest on this machine: measured once, cached next to the artifact.

``variant="auto"`` must never pick a variant that is slower than fp32 on the machine it runs on. The int8 kernels'
speed depends on the instruction set (AMX / AVX-512 VNNI / AVX-VNNI multiply U8xS8 natively; plain AVX2 emulates
it with 16-bit intermediates that can saturate), on the thread count, on the engine (onnxruntime or OpenVINO) and
its build, so the decision is measured, not assumed: one short timing of fp32 and every gated int8 variant the
first time an artifact is loaded with ``auto``, cached next to the artifact (or in ``~/.cache/rosberta-onnx`` when
that folder is read-only). ``ROSBERTA_AUTOTUNE=0`` or ``autotune=False`` skips it.

Memory comes first: fp32 (four times an int8 file) is timed on its own and released before the quantised candidates
are opened and timed alternating among themselves, and the losers are released as soon as the verdict is in. Holding
them all at once made the first load of the full-size model peak at 2.45 GB for a 0.5 GB choice (Zen 3). The price
is that fp32 and the int8 candidates are not alternated round by round, so drift between the two blocks falls on the
comparison with fp32. Where int8 is clearly faster that does not matter; where the two are a near-tie at the timed
shape (MiniLM on AVX2 without VNNI: 44.5/48.1, 51.7/52.7, 52.9/53.1 ms int8-avx2/fp32 on a quiet Zen 3) a busy
machine can tip it either way (CI, beside the emulated runs: fp32 81.8 against 88.7 ms), at a cost of a few percent.
Bracketing fp32's block between two of the candidates' was tried and tipped as often. The int8 candidates alternate.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .hardware import cpu_info
from .local_cache import LocalCache

__all__ = ["CACHE_NAME", "Verdict", "fastest_variant", "autotune_enabled"]

CACHE_NAME = ".autotune.json"


@dataclass(frozen=True)
class Verdict:
    """The measured choice: median milliseconds per candidate, and where the verdict came from."""

    choice: str
    ms: dict[str, float]
    cached: bool
    cache: str | None  # the file it was read from or written to


def autotune_enabled(flag: bool | None) -> bool:
    if flag is not None:
        return flag
    return os.environ.get("ROSBERTA_AUTOTUNE", "1").strip().lower() not in ("0", "false", "no", "off")


def fastest_variant(
    folder: Path,
    candidates: dict[str, str],
    *,
    threads: int,
    streams: int,
    open_session: Callable[[str], Any],
    release: Callable[[str], None],
    engine_versions: dict[str, str],
    seq: int = 64,
    batch: int = 4,
    rounds: int = 5,
) -> Verdict:
    """Time each of ``candidates`` (variant name -> sha256 of its model file; fp32 among them), keep the fastest.

    ``open_session`` is the caller's (which keeps what it opened, so the chosen session is not loaded twice) and
    ``release`` lets go of one it opened: fp32 once timed, the other losers once the verdict is in. The cache key
    holds everything the timing depends on (files, CPU, threads, streams, engine versions, shape): change any of
    them and it is measured again.
    """
    cpu = cpu_info()
    key_fields = {
        "candidates": dict(sorted(candidates.items())),
        "cpu": cpu.model_name,
        "machine": cpu.machine,
        "isa": cpu.isa,
        "threads": threads,
        "streams": streams,
        **engine_versions,
        "shape": [batch, seq],
    }
    cache = LocalCache(folder, CACHE_NAME)
    hit = cache.get(key_fields)
    if hit is not None and isinstance(hit[0], dict) and hit[0].get("choice") in candidates:
        return Verdict(choice=hit[0]["choice"], ms=hit[0]["ms"], cached=True, cache=hit[1])
    ids = np.full((batch, seq), 5, dtype=np.int64)
    ids[:, 0], ids[:, -1] = 0, 2
    feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
    for name in candidates:  # a candidate re-measured on this ISA just before is still open: fp32 is timed alone
        release(name)
    ms: dict[str, float] = {}
    if "fp32" in candidates:
        ms.update(_median_ms({"fp32": open_session("fp32")}, feeds, rounds))
        release("fp32")
    quantised = [n for n in candidates if n != "fp32"]
    ms.update(_median_ms({n: open_session(n) for n in quantised}, feeds, rounds))
    choice = min(ms, key=ms.__getitem__)
    for name in quantised:
        if name != choice:
            release(name)
    written = cache.put(key_fields, {"choice": choice, "ms": ms, "measured": time.strftime("%Y-%m-%dT%H:%M:%S")})
    return Verdict(choice=choice, ms=ms, cached=False, cache=written)


def _median_ms(sessions: dict[str, Any], feeds: dict[str, np.ndarray], rounds: int) -> dict[str, float]:
    """Median milliseconds of one ``run`` per session, after a warm-up, the sessions alternating round by round so
    that drift on a shared machine hits all alike."""
    times: dict[str, list[float]] = {name: [] for name in sessions}
    for s in sessions.values():
        s.run(None, feeds)
    for _ in range(rounds):
        for name, s in sessions.items():
            t = time.perf_counter()
            s.run(None, feeds)
            times[name].append(time.perf_counter() - t)
    return {name: float(np.median(t)) * 1e3 for name, t in times.items()}
