"""Export cost: each stage's wall time and peak memory, and the whole export beside the plain path a user would take.

    python -m benchmarks.studies.export_cost CHECKPOINT [--variants LIST] [--plain-python PY] [--out DIR]

1. **ours**: ``rosberta-onnx export CHECKPOINT`` in a child process (every variant unless ``--variants``), which
   writes its stage table (``--stages-json``): wall time and peak resident memory of each stage. The whole run's
   peak is the largest process of its tree (``wait4``'s ``ru_maxrss``: the export and the fusion/fp16 children).
2. **plain**: what a user would otherwise run for fp32 + int8 of the same checkpoint: ``optimum-cli export onnx
   --task feature-extraction``, then onnxruntime's ``quantize_dynamic`` (S8 weights per channel), each a child
   process of ``--plain-python`` (an environment with ``optimum-onnx``: ``.venv-interop``, which ``.ci/run``
   builds, by default). No parity, no gate, no fusions: the cost of the files alone.

The two run one after the other on the same machine (exports take minutes: one round each; the machine's noise is
stated beside the figures, as everywhere here). Prints the stage table, both totals and their ratio, with the CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rosberta_export.stages import StageCost, stage_table

from ..harness.machine import describe, machine_facts
from ..harness.results import save

_ROOT = Path(__file__).resolve().parents[2]
_QUANTIZE = """
import sys
from onnxruntime.quantization import QuantType, quantize_dynamic
quantize_dynamic(sys.argv[1], sys.argv[2], per_channel=True, weight_type=QuantType.QInt8)
"""


def timed(cmd: list[str], log: Path) -> dict:
    """Run ``cmd`` (output to ``log``): wall seconds, the largest process's peak RSS in its tree, exit status."""
    t0 = time.perf_counter()
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    scale = 1 if sys.platform == "darwin" else 1024
    return {
        "seconds": round(time.perf_counter() - t0, 1),
        "peak_bytes": usage.ru_maxrss * scale,
        "rc": proc.returncode,
        "log": str(log),
    }


def ours(checkpoint: str, work: Path, variants: str | None) -> dict:
    stages = work / "stages.json"
    cmd = [
        str(Path(sys.executable).with_name("rosberta-onnx")),
        "export",
        checkpoint,
        "-o",
        str(work / "ours"),
        "--overwrite",
    ]
    cmd += ["--stages-json", str(stages)] + (["--variants", variants] if variants else [])
    run = timed(cmd, work / "ours.log")
    run["stages"] = json.loads(stages.read_text()) if stages.is_file() else []
    return run


def plain(checkpoint: str, work: Path, python: str) -> dict:
    out = work / "plain"
    export = timed(
        [python, "-m", "optimum.commands.optimum_cli", "export", "onnx", "--model", checkpoint]
        + ["--task", "feature-extraction", str(out)],
        work / "plain-export.log",
    )
    if export["rc"] != 0:
        return {"export": export, "quantize": None, "seconds": None, "peak_bytes": None, "rc": export["rc"]}
    quantize = timed([python, "-c", _QUANTIZE, str(out / "model.onnx"), str(out / "model_int8.onnx")], work / "q.log")
    return {
        "export": export,
        "quantize": quantize,
        "seconds": round(export["seconds"] + quantize["seconds"], 1),
        "peak_bytes": max(export["peak_bytes"], quantize["peak_bytes"]),
        "rc": quantize["rc"],
    }


def report(res: dict) -> str:
    gb = lambda b: "–" if b is None else f"{b / 1e9:.2f}"
    o, p = res["ours"], res["plain"]
    lines = [
        f"CPU: {res['machine']}",
        f"checkpoint: {res['checkpoint']} (variants: {res['variants'] or 'all'})",
        "",
        stage_table([StageCost(**s) for s in o["stages"]]),
    ]
    lines += [
        "",
        "| path | seconds | peak RSS of the largest process (GB) | exit |",
        "|---|---:|---:|---:|",
        f"| ours: rosberta-onnx export (files, parity, gates) | {o['seconds']:.0f} | {gb(o['peak_bytes'])} | {o['rc']} |",
    ]
    if p is None:
        lines.append("| plain: optimum-cli export onnx + quantize_dynamic | not run (no --plain-python) | | |")
    else:
        lines.append(
            f"| plain: optimum-cli export onnx + quantize_dynamic | {p['seconds'] or '–'} | {gb(p['peak_bytes'])} "
            f"| {p['rc']} |"
        )
        if p["seconds"]:
            lines.append(f"\nours / plain: {o['seconds'] / p['seconds']:.2f}× the time")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint", help="a Hugging Face checkpoint folder (or hub id)")
    ap.add_argument("--variants", default=None, help="as the export's --variants (default: all)")
    default_plain = _ROOT / ".venv-interop" / "bin" / "python"
    ap.add_argument(
        "--plain-python",
        default=str(default_plain) if default_plain.exists() else None,
        help="a Python with optimum-onnx for the plain path (default .venv-interop, which .ci/run builds)",
    )
    ap.add_argument("--no-plain", action="store_true", help="only our export's stage table")
    ap.add_argument("--out", default="benchmarks/results/export-cost", help="results folder")
    ap.add_argument("--keep", action="store_true", help="keep the exported folders (default: removed)")
    a = ap.parse_args(argv)
    if not a.no_plain and not a.plain_python:
        ap.error(
            "the plain path needs a Python with optimum-onnx: --plain-python PY (e.g. python -m venv .venv-interop && "
            ".venv-interop/bin/pip install -e . 'optimum-onnx==0.1.0' 'torch==2.13.0'), or --no-plain"
        )
    work = Path(tempfile.mkdtemp(prefix="export-cost-"))
    res: dict = {}
    try:
        res = {"machine": describe(machine_facts()), "checkpoint": a.checkpoint, "variants": a.variants}
        res["plain"] = None if a.no_plain else plain(a.checkpoint, work, a.plain_python)
        res["ours"] = ours(a.checkpoint, work, a.variants)
        text = report(res)
        print(text)
        stem = Path(a.out) / time.strftime("%Y%m%d-%H%M%S")
        print(f"\n{save(stem.with_suffix('.json'), res)}\n{save(stem.with_suffix('.md'), text + chr(10))}")
        failed = [k for k in ("ours", "plain") if res[k] and res[k]["rc"] != 0]
        for k in failed:
            print(f"{k} failed: see its log under {work}", file=sys.stderr)
        return 1 if failed else 0
    finally:
        if not a.keep and not any(res.get(k) and res[k]["rc"] for k in ("ours", "plain")):
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
