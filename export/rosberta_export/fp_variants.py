"""The fp32 and fp16 variants: onnxruntime's transformer fusions on the raw graph, then the fp16 conversion, each in
a child process.

Why children: the fusion pass and the fp16 conversion are the export's largest transient heaps (with onnxruntime's
whole-model symbolic shape inference they reached 8.5 GB on the full-size graph; without it, see :mod:`.fuse` and
:mod:`.fp16`, about 2 GB). As separate processes their memory goes back to the OS before calibration. A subprocess
rather than multiprocessing: spawn re-imports the caller's ``__main__``, which a library must not require of callers.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from rosberta_onnx.manifest import ModelFacts

from .errors import ExportError
from .records import FILES

__all__ = ["in_child", "build_fp_variants"]


def in_child(module: str, job: dict) -> dict:
    """``python -m <module>`` with ``job`` as JSON on stdin; its JSON answer (last stdout line)."""
    r = subprocess.run([sys.executable, "-m", module], input=json.dumps(job), capture_output=True, text=True)
    if r.returncode != 0:
        why = (
            (
                f"killed by signal {-r.returncode} (most often: out of memory -- fusing the full-size model needs about "
                f"2.5 GB free)"
            )
            if r.returncode < 0
            else f"exit status {r.returncode}"
        )
        tail = " ".join(r.stderr.strip().splitlines()[-3:])
        raise ExportError(
            f"the export step {sys.executable} -m {module} failed: {why}. {tail} "
            f"Free memory or fix what it reports, then export again"
        )
    return json.loads(r.stdout.strip().splitlines()[-1])


def build_fp_variants(
    raw: Path, work: Path, out: Path, variants: tuple[str, ...], facts: ModelFacts, props: dict[str, str]
) -> tuple[dict[str, list[Path]], dict[str, int], dict[str, int], int]:
    """The fused fp32 variant and its fp16 conversion (the files of each), the fused op counts, the graph
    rewrites applied to both (fp16 is converted from the rewritten fp32 graph) and the larger child's peak RSS."""
    fused = out / FILES["fp32"] if "fp32" in variants else work / "fused.onnx"
    got = in_child(
        "rosberta_export.fuse",
        {
            "raw": str(raw),
            "out": str(fused),
            "num_heads": facts.num_heads,
            "hidden_size": facts.hidden_size,
            "pooling": facts.pooling,
            "props": props,
        },
    )
    written = {"fp32": [Path(p) for p in got["files"]]} if "fp32" in variants else {}
    peak = int(got.get("peak_bytes", 0))
    if "fp16" in variants:
        half = in_child("rosberta_export.fp16", {"fused": str(fused), "out": str(out / FILES["fp16"]), "props": props})
        written["fp16"] = [Path(p) for p in half["files"]]
        peak = max(peak, int(half.get("peak_bytes", 0)))
    return written, got["counts"], got["rewrites"], peak
