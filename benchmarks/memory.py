"""Peak resident memory per system, each in a fresh process so peaks don't mix.

The parent runs ``python -m benchmarks.memory SYSTEM ...`` once per system. The child imports what
the system needs, loads it, encodes a fixed workload and prints one JSON line. The peak is the
process's ``VmHWM`` (Linux), not ``ru_maxrss``: after a vfork+exec the latter can carry the *parent's*
peak into the child.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from .harness.rss import peak_mb, reset_peak, rss_mb

__all__ = ["measure_all", "main"]

_ROOT = Path(__file__).resolve().parents[1]  # the folder holding the benchmarks package


def _child(a) -> dict:
    from .harness.base import Context, Skip
    from .systems import make_system

    t0 = time.perf_counter()
    ctx = Context(a.artifact, reference=a.reference, threads=a.threads, plain_onnx=a.plain_onnx)
    system = make_system(a.system, ctx)
    try:
        return _measure(system, a, t0)
    except Skip as exc:
        return {"skipped": str(exc)}
    finally:
        system.close()
        ctx.close()


def _measure(system, a, t0: float) -> dict:
    system.prepare()
    reset_peak()  # what prepare builds once, offline (OpenVINO int8's NNCF pass), is not the serving peak
    import_s = time.perf_counter() - t0
    after_imports = rss_mb()
    system.load()
    # a system whose model lives in a worker process (the JS runtime): that process's figures; its RSS after
    # imports is not observable from here, so the peak over imports is over this (idle) process's
    pid = system.worker_pid or "self"
    after_load = rss_mb(pid)
    texts = json.loads(Path(a.texts).read_text(encoding="utf-8"))
    t1 = time.perf_counter()
    for batch in texts:
        system.encode(batch, own_batching=False)
    peak = peak_mb(pid)
    return {
        "rss_after_imports_mb": round(after_imports, 1),
        "rss_after_load_mb": round(after_load, 1),
        "peak_rss_mb": round(peak, 1),
        "peak_over_imports_mb": round(peak - after_imports, 1),
        "import_s": round(import_s, 2),
        "load_s": round(system.load_s or 0.0, 2),
        "encode_s": round(time.perf_counter() - t1, 2),
    }


def _one(name: str, base_cmd: list[str], env: dict, timeout_s: float, log) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.memory", name, *base_cmd]
    t0 = time.perf_counter()
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=env, cwd=str(_ROOT))
    except subprocess.TimeoutExpired:
        log(f"memory {name}: timed out")
        return {"error": f"no result within {timeout_s:.0f}s"}
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    if r.returncode != 0 or not lines:
        tail = (r.stderr.strip().splitlines() or ["(no output)"])[-1][:300]
        log(f"memory {name}: failed — {tail}")
        return {"error": f"exit {r.returncode}: {tail}"}
    fig = json.loads(lines[-1])
    log(
        f"memory {name}: "
        + (
            f"skipped — {fig['skipped']}"
            if "skipped" in fig
            else f"peak {fig['peak_rss_mb']:.0f} MB ({time.perf_counter() - t0:.0f}s)"
        )
    )
    return fig


def measure_all(
    names: list[str],
    *,
    artifact,
    reference,
    threads: int,
    plain_onnx,
    texts_file: Path,
    timeout_s: float,
    log,
    jobs: int = 1,
) -> dict[str, dict]:
    """One child process per system; {name: figures | {"skipped"|"error": reason}}.

    ``jobs`` > 1 runs children side by side: each peak is its own process's, so they don't mix, but the
    children's load/encode times (recorded for information only) then share the CPU.
    """
    from concurrent.futures import ThreadPoolExecutor

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_ROOT), env.get("PYTHONPATH")]))
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    base = ["--artifact", str(artifact), "--threads", str(threads), "--texts", str(texts_file)]
    if reference:
        base += ["--reference", str(reference)]
    if plain_onnx:
        base += ["--plain-onnx", str(plain_onnx)]
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = {n: pool.submit(_one, n, base, env, timeout_s, log) for n in names}
    return {n: f.result() for n, f in futures.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.memory", description="peak RSS of one system (one JSON line)"
    )
    p.add_argument("system")
    p.add_argument("--artifact", required=True)
    p.add_argument("--reference", default=None)
    p.add_argument("--plain-onnx", default=None)
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--texts", required=True, help="JSON list of batches (lists of str), each encoded once")
    a = p.parse_args(argv)
    print(json.dumps(_child(a)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
