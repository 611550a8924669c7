"""onnxruntime's memory by how the file stores its weights and by session option: what the int8 variants ship with.

    python -m benchmarks.studies.ort_memory ARTIFACT [--variant int8] [--out DIR]

The variant's file is written twice into a scratch folder, weights inside the ``.onnx`` and weights in a ``.data``
file beside it, and each copy is loaded under three session settings: onnxruntime's defaults (CPU arena on,
weights pre-packed for its GEMM kernels), the arena off, and pre-packing off. Each run is a fresh process
(2 threads): resident memory after load and the peaks after a 1×16 and an 8×128 call. Speed of the settings that
matter is checked by ``python -m benchmarks`` (alternating rounds); this study is about bytes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..harness.machine import cpu_facts
from ..harness.results import save
from ..harness.runner import as_run

SETTINGS = {
    "defaults": {},
    "arena off": {"arena": False},
    "pre-packing off": {"session.disable_prepacking": "1"},
}
_ROOT = Path(__file__).resolve().parents[2]


def _child(path: str, setting: str, threads: int) -> dict:
    import numpy as np
    import onnxruntime as ort

    from ..harness.rss import peak_mb, reset_peak, rss_mb

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.log_severity_level = 3
    for key, value in SETTINGS[setting].items():
        if key == "arena":
            so.enable_cpu_mem_arena = bool(value)
        else:
            so.add_session_config_entry(key, str(value))
    before = rss_mb()
    reset_peak()
    t0 = time.perf_counter()
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    out = {"load_s": round(time.perf_counter() - t0, 2), "rss_before_mb": round(before)}
    out["rss_after_load_mb"], out["peak_load_mb"] = round(rss_mb()), round(peak_mb())
    for b, t in ((1, 16), (8, 128)):
        ids = np.full((b, t), 5, np.int64)
        ids[:, 0], ids[:, -1] = 0, 2
        sess.run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids)})
        out[f"peak_after_{b}x{t}_mb"] = round(peak_mb())
    out["rss_end_mb"] = round(rss_mb())
    return out


def _copies(artifact: Path, variant: str, work: Path) -> dict[str, Path]:
    import onnx

    from rosberta_onnx import Manifest

    src = artifact / Manifest.read(artifact).variant(variant).file
    model = onnx.load(str(src))
    inline, apart = work / "inline.onnx", work / "apart.onnx"
    onnx.save_model(model, str(inline))
    onnx.save_model(
        model, str(apart), save_as_external_data=True, all_tensors_to_one_file=True, location="apart.onnx.data"
    )
    return {"weights inside the .onnx": inline, "weights in a .data file": apart}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.studies.ort_memory", description=__doc__.split("\n\n")[0])
    p.add_argument("artifact", nargs="?", type=Path)
    p.add_argument("--variant", default="int8")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=_ROOT / "benchmarks" / "results" / "ort-memory")
    p.add_argument("--child", nargs=2, metavar=("FILE", "SETTING"), help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        print(json.dumps(_child(a.child[0], a.child[1], a.threads)), flush=True)
        return 0
    if a.artifact is None:
        p.error("ARTIFACT is required")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(_ROOT), os.environ.get("PYTHONPATH")]))}
    rows = []
    with tempfile.TemporaryDirectory(prefix="ort-memory-") as tmp:
        for storage, path in _copies(a.artifact, a.variant, Path(tmp)).items():
            for setting in SETTINGS:
                cmd = [sys.executable, "-m", "benchmarks.studies.ort_memory", "--child", str(path), setting]
                r = subprocess.run(cmd + ["--threads", str(a.threads)], capture_output=True, text=True, env=env)
                lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
                fig = json.loads(lines[-1]) if r.returncode == 0 and lines else {"error": r.stderr[-300:]}
                print(f"[ort-memory] {storage}, {setting}: {fig}", file=sys.stderr, flush=True)
                rows.append({"storage": storage, "setting": setting, **fig})
    res = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "machine": cpu_facts(),
        "artifact": str(a.artifact),
        "variant": a.variant,
        "rows": rows,
        "reproduce": "python -m benchmarks.studies.ort_memory " + as_run(argv),
    }
    a.out.mkdir(parents=True, exist_ok=True)
    save(a.out / "ort_memory.json", res)
    lines = [
        f"onnxruntime memory of `{a.artifact}` {a.variant}, {a.threads} threads, on {res['machine']['description']}. "
        f"Reproduce: `{res['reproduce']}`",
        "",
        "| weights | session | RSS after load MB | peak after 1×16 MB | peak after 8×128 MB | load s |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['storage']} | {r['setting']} | error | | | |")
            continue
        lines.append(
            f"| {r['storage']} | {r['setting']} | {r['rss_after_load_mb']} | {r['peak_after_1x16_mb']} | "
            f"{r['peak_after_8x128_mb']} | {r['load_s']} |"
        )
    md = "\n".join(lines) + "\n"
    save(a.out / "ort_memory.md", md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
