"""Where the time of ``int8-openvino`` goes, MatMul kind by MatMul kind, against NNCF's OpenVINO int8.

    python -m benchmarks.studies.matmul_profile ARTIFACT --reference CKPT [--shapes 1x16,8x128,32x128]
        [--rounds 3] [--threads 2] [--out DIR] [--page docs/int8.md]
    python -m benchmarks.studies.matmul_profile ARTIFACT --render DIR/matmul_profile.json --page docs/int8.md

OpenVINO's own profile (``PERF_COUNT``) of three compiled models on the same shapes, one stream of ``--threads``
threads each, every model in turn each round:

- ``int8-openvino`` as shipped (activations quantised at run time in groups of 256, the manifest's options);
- the same graph with every weight MatMul's input given a static per-tensor u8 scale
  (:func:`.static_activations.write_static`; the ranges come from a few calibration sentences, which is enough for
  speed; this graph fails the gate on real weights);
- NNCF's static int8 of the fp32 model (the benchmark's ``openvino-int8`` system, quantised from ``--reference``).

Each fully-connected node is assigned its kind by its place in the layer (Q, K, V — one fused node in NNCF's graph,
which reads the fused fp32 file —, attention output, FFN up, FFN down); the rest of the graph is one row. The table
gives each kind's milliseconds per run, so the gap to NNCF splits into the MatMul kinds that cause it.
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ..harness.results import save
from .static_activations import SETS, VARIANT, collect_ranges, matmul_kinds, write_static

__all__ = ["ROWS", "fc_kinds", "profile_table"]

ROWS = ("Q, K, V", "attention output", "FFN up", "FFN down", "rest of the graph")
_PER_LAYER = {6: ROWS[:1] * 3 + ROWS[1:4], 4: ROWS[:4]}  # separate or fused Q, K, V


def fc_kinds(names: list[str], layers: int) -> dict[str, str]:
    """Fully-connected node name -> row, from the nodes in execution order (``layers`` encoder layers)."""
    if not names or len(names) % layers or len(names) // layers not in _PER_LAYER:
        raise ValueError(f"{len(names)} fully-connected nodes do not split into {layers} layers of 4 or 6")
    order = _PER_LAYER[len(names) // layers]
    return {name: order[i % len(order)] for i, name in enumerate(names)}


class _Profiled:
    """One compiled model with PERF_COUNT on, run on fixed feeds, its node times summed by row.

    OpenVINO reports each node's time as the mean over every inference the request has run since it was compiled,
    whatever the shapes; so the times of a window of runs are the difference of that mean times the count, before
    and after the window."""

    def __init__(self, path: Path, options: dict, threads: int, layers: int) -> None:
        import openvino as ov

        core = ov.Core()
        config = {**options, "INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1, "PERF_COUNT": True}
        self.compiled = core.compile_model(core.read_model(str(path)), "CPU", config)
        self.request = self.compiled.create_infer_request()
        self.inputs = {i.get_any_name() for i in self.compiled.inputs}
        self.layers = layers
        self.kinds: dict[str, str] | None = None
        self.count = 0  # inferences run on the request so far

    def _totals(self) -> collections.Counter:
        """Milliseconds each row has taken over every inference so far."""
        info = self.request.profiling_info if self.count else []
        if self.kinds is None and info:
            self.kinds = fc_kinds([p.node_name for p in info if p.node_type.startswith("FullyConnected")], self.layers)
        totals: collections.Counter = collections.Counter()
        for p in info:
            totals[(self.kinds or {}).get(p.node_name, ROWS[-1])] += p.real_time.total_seconds() * 1e3 * self.count
        return totals

    def run(self, batch: int, tokens: int, reps: int) -> tuple[list[float], dict[str, float]]:
        feeds = {
            "input_ids": np.full((batch, tokens), 100, np.int64),
            "attention_mask": np.ones((batch, tokens), np.int64),
        }
        feeds = {k: v for k, v in feeds.items() if k in self.inputs}
        before, walls = self._totals(), []
        for _ in range(reps):
            t0 = time.perf_counter()
            self.request.infer(feeds)
            walls.append(time.perf_counter() - t0)
            self.count += 1
        after = self._totals()
        return walls, {row: (after[row] - before[row]) / reps for row in ROWS}


def _all_static(art: Path, work: Path, calibration: int, log) -> Path:
    import onnx

    from rosberta_onnx import Manifest

    src = art / Manifest.read(art).variant(VARIANT).file
    graph = onnx.load(str(src), load_external_data=False).graph
    kinds = matmul_kinds(graph)
    stats = collect_ranges(src, art, sorted({n.input[0] for n in graph.node if n.name in kinds}), calibration)
    out = work / "static-everywhere.onnx"
    write_static(src, out, stats, {m for m, k in kinds.items() if k in SETS["all"]}, "minmax")
    log(f"wrote the every-MatMul-static graph ({calibration} calibration sentences)")
    return out


def _nncf_ir(art: Path, reference: str, threads: int, log):
    from ..harness.base import Context
    from ..systems import make_system

    ctx = Context(art, reference=reference, threads=threads, log=log)
    nncf = make_system("openvino-int8", ctx)
    nncf.prepare()
    return ctx, nncf


def profile_table(res: dict) -> str:
    systems = list(res["systems"])
    lines = []
    for shape, per in res["shapes"].items():
        lines += [
            f"\n**{shape}** (ms per run; wall = median over every run, the rows = OpenVINO's per-node times, mean)\n",
            "| | " + " | ".join(systems) + " | shipped − NNCF |",
            "|---|" + "---:|" * (len(systems) + 1),
        ]
        for row in ("wall", *ROWS):
            vals = [per[s][row] for s in systems]
            gap = per["int8-openvino (shipped)"][row] - per["NNCF int8"][row]
            lines.append(f"| {row} | " + " | ".join(f"{v:.1f}" for v in vals) + f" | {gap:+.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from rosberta_onnx import Manifest

    from ..harness.machine import cpu_facts
    from ..harness.runner import as_run
    from ..systems.nncf_int8 import RECIPE as NNCF_RECIPE

    p = argparse.ArgumentParser(prog="python -m benchmarks.studies.matmul_profile")
    p.add_argument("artifact", type=Path)
    p.add_argument("--reference", help="the checkpoint NNCF quantises (its fp32 model); required unless --render")
    p.add_argument("--shapes", default="1x16,8x128,32x128")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--calibration", type=int, default=16, help="sentences for the static graph's ranges")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/matmul-profile"))
    p.add_argument("--page", type=Path, help="also write the table into this page's matmul-profile section")
    p.add_argument("--render", type=Path, help="re-publish a results JSON without measuring")
    a = p.parse_args(argv)
    if a.render:
        _publish(json.loads(a.render.read_text(encoding="utf-8")), a.render.parent, a.page)
        return 0
    if not a.reference:
        p.error("--reference CKPT is needed to measure (NNCF's int8 is quantised from it)")
    try:
        shapes = [tuple(int(v) for v in s.split("x")) for s in a.shapes.split(",")]
    except ValueError:
        p.error(f"--shapes {a.shapes!r}: write BATCHxTOKENS,... e.g. 1x16,8x128")
    log = lambda msg: print(f"[matmul-profile] {msg}", file=sys.stderr, flush=True)
    manifest = Manifest.read(a.artifact)
    record = manifest.variant(VARIANT)
    layers = int(json.loads((a.artifact / "config.json").read_text(encoding="utf-8"))["num_hidden_layers"])
    tmp = tempfile.TemporaryDirectory(prefix="rosberta-matmul-profile-")  # the static graph: as large as the variant
    static = _all_static(a.artifact, Path(tmp.name), a.calibration, log)
    ctx, nncf = _nncf_ir(a.artifact, a.reference, a.threads, log)
    systems = {
        "int8-openvino (shipped)": _Profiled(a.artifact / record.file, dict(record.engine_options), a.threads, layers),
        "every MatMul static (fails the gate)": _Profiled(static, dict(record.engine_options), a.threads, layers),
        "NNCF int8": _Profiled(nncf.ir_path, {"INFERENCE_PRECISION_HINT": nncf.precision}, a.threads, layers),
    }
    walls = {s: {shape: [] for shape in shapes} for s in systems}
    rows = {s: {shape: [] for shape in shapes} for s in systems}
    for prof in systems.values():
        for b, t in shapes:
            prof.run(b, t, 2)  # warm-up: OpenVINO prepares per shape
    for r in range(a.rounds):
        for b, t in shapes:
            reps = max(2, int(1024 / (b * t)))
            for name, prof in systems.items():
                w, per = prof.run(b, t, reps)
                walls[name][(b, t)] += w
                rows[name][(b, t)].append(per)
        log(f"round {r + 1}/{a.rounds}")
    nncf.close()
    ctx.close()
    tmp.cleanup()
    res: dict = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "machine": cpu_facts(),
        "artifact": str(a.artifact),
        "threads": a.threads,
        "systems": {
            "int8-openvino (shipped)": f"{record.file} with {dict(record.engine_options)}",
            "every MatMul static (fails the gate)": "the same graph, static per-tensor u8 activations on every MatMul",
            "NNCF int8": f"{NNCF_RECIPE} (INFERENCE_PRECISION_HINT {nncf.precision})",
        },
        "reproduce": "python -m benchmarks.studies.matmul_profile " + as_run(argv),
        "shapes": {
            f"{b}x{t}": {
                name: {
                    "wall": 1e3 * statistics.median(walls[name][(b, t)]),
                    **{row: statistics.mean(d.get(row, 0.0) for d in rows[name][(b, t)]) for row in ROWS},
                }
                for name in systems
            }
            for b, t in shapes
        },
    }
    a.out.mkdir(parents=True, exist_ok=True)
    save(a.out / "matmul_profile.json", res)
    _publish(res, a.out, a.page)
    return 0


def _publish(res: dict, out: Path, page: Path | None) -> None:
    """matmul_profile.md beside the JSON, and the marked section of ``page`` (docs/int8.md) when given."""
    from ..harness.pages import publish_section

    md = (
        f"`int8-openvino` by MatMul kind against NNCF, `{res['artifact']}`, {res['machine']['description']}, one "
        f"stream of {res['threads']} threads, systems in turn each round. Reproduce: `{res['reproduce']}`\n"
        + profile_table(res)
        + "\n"
    )
    save(out / "matmul_profile.md", md)
    if page:
        publish_section(page, "matmul-profile", md, "python -m benchmarks.studies.matmul_profile")
    print(md)


if __name__ == "__main__":
    sys.exit(main())
