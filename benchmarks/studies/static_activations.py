"""Static int8 activations on chosen MatMul kinds of ``int8-openvino``: what they buy in speed, what they cost in
quality.

    python -m benchmarks.studies.static_activations ARTIFACT [--sets qkv,qkv+up,qkv+up+o,all] [--how minmax,mse]
        [--calibration 128] [--quality] [--speed --reference CKPT] [--out DIR]

The shipped ``int8-openvino`` graph quantises every MatMul's activations at run time (OpenVINO's dynamic groups of
256). NNCF's static int8 fixes one scale per tensor at calibration, which selects a faster kernel at batch shapes
but fails the quality gate on MiniLM. This study takes the shipped graph and gives a chosen set of MatMul kinds
static per-tensor u8 activations — a ``QuantizeLinear``/``DequantizeLinear`` pair on the (smoothed) input, which
OpenVINO turns into a FakeQuantize and a static int8 kernel — leaving the others dynamic:

- kinds: ``qkv`` (the three projections that read a LayerNorm output), ``ffn-up`` (the other LayerNorm reader),
  ``attn-out`` and ``ffn-down`` (the two that read attention context and GELU output);
- ranges from ``--calibration`` RU/EN STS train sentences: ``minmax`` (the observed range) or ``mse`` (the shrunk
  range with the least squared error on a sample of the values);
- ``--quality``: cosine against fp32 and the gate's retrieval and STS figures (``--pairs`` per language) for the
  shipped graph and each variant, through the runtime (trained weights are what make this mean something: MiniLM);
- ``--speed``: 1×16, 8×128 and 32×128 against NNCF's OpenVINO int8 (the benchmark's ``openvino-int8`` system,
  quantised from ``--reference``), every system in turn each round, ratios per round, medians.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ..harness.results import save

__all__ = ["KINDS", "collect_ranges", "matmul_kinds", "write_static"]

KINDS = ("qkv", "qkv", "qkv", "attn-out", "ffn-up", "ffn-down")  # a BERT/RoBERTa layer's weight MatMuls, in order
SETS = {
    "qkv": {"qkv"},
    "qkv+up": {"qkv", "ffn-up"},
    "qkv+up+o": {"qkv", "ffn-up", "attn-out"},
    "all": {"qkv", "ffn-up", "attn-out", "ffn-down"},
    "o+down": {"attn-out", "ffn-down"},
    "up+o+down": {"ffn-up", "attn-out", "ffn-down"},
}
VARIANT = "int8-openvino"


def matmul_kinds(graph) -> dict[str, str]:
    """MatMul name -> kind, for the MatMuls whose weight comes through a DequantizeLinear (int8 weights)."""
    deq = {n.output[0] for n in graph.node if n.op_type == "DequantizeLinear"}
    mms = [n for n in graph.node if n.op_type == "MatMul" and n.input[1] in deq]
    if not mms or len(mms) % len(KINDS):
        raise ValueError(f"expected {len(KINDS)} int8 MatMuls per layer, found {len(mms)}")
    return {n.name: KINDS[i % len(KINDS)] for i, n in enumerate(mms)}


def _batches(art: Path, n: int, bs: int = 8, max_length: int = 128):
    from tokenizers import Tokenizer

    from rosberta_export.quantize import calibration_texts

    tok = Tokenizer.from_file(str(art / "tokenizer.json"))
    tok.enable_truncation(max_length)
    tok.enable_padding()
    texts = calibration_texts(n)
    for i in range(0, len(texts), bs):
        enc = tok.encode_batch(texts[i : i + bs])
        yield np.array([e.ids for e in enc], np.int64), np.array([e.attention_mask for e in enc], np.int64)


def collect_ranges(graph_file: Path, art: Path, names: list[str], n: int, sample: int = 300_000) -> dict:
    """Per tensor: (min, max, a random sample of its values over real tokens, per-channel min, per-channel max) on
    the calibration sentences."""
    import onnx
    import onnxruntime as ort
    from onnx import helper

    m = onnx.load(str(graph_file))
    for name in names:
        m.graph.output.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    lo = dict.fromkeys(names, np.inf)
    hi = dict.fromkeys(names, -np.inf)
    vals: dict[str, list] = {k: [] for k in names}
    chlo: dict[str, np.ndarray] = {}
    chhi: dict[str, np.ndarray] = {}
    batches = list(_batches(art, n))
    for ids, mask in batches:
        for name, x in zip(names, sess.run(names, {"input_ids": ids, "attention_mask": mask})):
            x = x[mask.astype(bool)] if x.ndim == 3 and x.shape[1] == mask.shape[1] else x  # real tokens only
            rows = x.reshape(-1, x.shape[-1])
            chlo[name] = np.minimum(chlo.get(name, np.inf), rows.min(0))
            chhi[name] = np.maximum(chhi.get(name, -np.inf), rows.max(0))
            x = x.reshape(-1)
            lo[name], hi[name] = min(lo[name], float(x.min())), max(hi[name], float(x.max()))
            vals[name].append(rng.choice(x, min(x.size, sample // len(batches) + 1), replace=False))
    return {k: (lo[k], hi[k], np.concatenate(vals[k]), chlo[k], chhi[k]) for k in names}


def _fake_quant(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    s = (hi - lo) / 255
    z = np.round(-lo / s)
    return (np.clip(np.round(x / s) + z, 0, 255) - z) * s


def _range(lo: float, hi: float, values: np.ndarray, how: str) -> tuple[float, float]:
    lo, hi = min(lo, 0.0), max(hi, 0.0)  # the range holds 0, so zero padding stays exact
    if how == "minmax":
        return lo, hi
    shrunk = [(lo * c, hi * c) for c in (1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3)]
    return min(shrunk, key=lambda r: float(np.mean((_fake_quant(values, *r) - values) ** 2)))


def write_static(
    src: Path, out: Path, stats: dict, chosen: set[str], how: str, *, split: dict[str, int] | None = None
) -> None:
    """``src`` with a u8 QuantizeLinear/DequantizeLinear pair on the input of each MatMul in ``chosen``.

    ``split``: MatMul name -> k. Its k input channels of largest calibrated magnitude leave the int8 product
    (their int8 weight rows are zeroed, so the static range is that of the other channels and what an outlier
    saturates to counts for nothing) and go through a float MatMul with their weight rows, added back: the
    LLM.int8() decomposition with outlier channels fixed at calibration.
    """
    import onnx
    from onnx import helper, numpy_helper

    split = split or {}
    m = onnx.load(str(src))
    g = m.graph
    inits = {i.name: i for i in g.initializer}
    producer = {o: node for node in g.node for o in node.output}
    before: dict[str, list] = {}
    after: dict[str, list] = {}
    for n in g.node:
        if n.name not in chosen:
            continue
        x = n.input[0]
        p = "static_" + n.name.replace("/", "_")
        lo, hi = _range(*stats[x][:3], how)
        nodes = []
        if split.get(n.name):
            chlo, chhi = stats[x][3], stats[x][4]
            idx = np.sort(np.argsort(np.maximum(np.abs(chlo), np.abs(chhi)))[-split[n.name] :]).astype(np.int64)
            keep = np.ones(chlo.shape, bool)
            keep[idx] = False
            lo, hi = min(float(chlo[keep].min()), 0.0), max(float(chhi[keep].max()), 0.0)
            deq = producer[n.input[1]]  # DequantizeLinear(int8 weight, per-column scale)
            wq, col = (numpy_helper.to_array(inits[name]) for name in deq.input[:2])
            w_out = wq[idx].astype(np.float32) * col.astype(np.float32)[None, :]
            # the int8 product drops the outlier channels through zero weight rows: their activations may
            # saturate the static range, and count for nothing there, so no mask runs on the activations
            wq = wq.copy()
            wq[idx] = 0
            inits[deq.input[0]].CopyFrom(numpy_helper.from_array(wq, deq.input[0]))
            g.initializer.extend(
                [numpy_helper.from_array(idx, p + "_idx"), numpy_helper.from_array(w_out, p + "_wout")]
            )
            nodes += [
                helper.make_node("Gather", [x, p + "_idx"], [p + "_xout"], name=p + "_Outliers", axis=-1),
                helper.make_node("MatMul", [p + "_xout", p + "_wout"], [p + "_yout"], name=p + "_OutlierMatMul"),
            ]
            y = n.output[0]
            n.output[0] = p + "_ymain"
            after[n.name] = [helper.make_node("Add", [p + "_ymain", p + "_yout"], [y], name=p + "_AddOutliers")]
        scale = np.float32((hi - lo) / 255)
        zero = np.uint8(np.clip(np.round(-lo / scale), 0, 255))
        g.initializer.extend(
            [numpy_helper.from_array(np.array(scale), p + "_s"), numpy_helper.from_array(np.array(zero), p + "_z")]
        )
        before[n.name] = nodes + [
            helper.make_node("QuantizeLinear", [x, p + "_s", p + "_z"], [p + "_q"], name=p + "_Q"),
            helper.make_node("DequantizeLinear", [p + "_q", p + "_s", p + "_z"], [p + "_dq"], name=p + "_DQ"),
        ]
        n.input[0] = p + "_dq"
    ordered = [d for n in g.node for d in (*before.get(n.name, ()), n, *after.get(n.name, ()))]
    del g.node[:]
    g.node.extend(ordered)
    onnx.save_model(m, str(out), save_as_external_data=True, location=out.name + ".data")


def _artifact_with(art: Path, dst: Path) -> Path:
    """A folder that is ``art`` (links) except for the int8-openvino graph, which the caller writes."""
    from rosberta_onnx import Manifest

    dst.mkdir(parents=True, exist_ok=True)
    own = set(Manifest.read(art).variant(VARIANT).files)
    for f in art.iterdir():
        if f.name not in own and not f.name.startswith(".") and not (dst / f.name).exists():
            (dst / f.name).symlink_to(f.resolve())
    return dst


def _quality(art: Path, dirs: dict[str, Path], pairs: int, log) -> dict:
    from rosberta_export.corpus import LANGS, sts_pairs
    from rosberta_export.gate import gate_figures
    from rosberta_onnx import Encoder, Manifest

    prompts = Manifest.read(art).model.prompts
    fp32 = Encoder.load(art, variant="fp32", verify=False)
    texts = [t for lang in LANGS for p in sts_pairs(lang, "dev")[:pairs] for t in (p.sentence1, p.sentence2)]
    ref = fp32.encode(texts)
    out = {}
    for label, d in dirs.items():
        enc = Encoder.load(d, variant=VARIANT, verify=False)
        cos = (ref * enc.encode(texts)).sum(1)
        fig = gate_figures(
            lambda t, task: fp32.encode(t, task=task),
            lambda t, task, enc=enc: enc.encode(t, task=task),
            prompts=prompts,
            pairs_per_lang=pairs,
        )
        out[label] = {
            "cos_min": float(cos.min()),
            "cos_mean": float(cos.mean()),
            "top10": fig["top10_overlap"],
            "spearman_delta": {k: fig["spearman_int8"][k] - fig["spearman_fp32"][k] for k in LANGS},
        }
        log(f"quality {label}: {json.dumps(out[label])}")
    return out


def _speed(art: Path, reference: str, dirs: dict[str, Path], rounds: int, threads: int, log) -> dict:
    from rosberta_onnx import Encoder

    from ..harness.base import Context
    from ..harness.workloads import DOC_PREFIX, QUERY_PREFIX, exact_length_texts
    from ..systems import make_system

    fp32 = Encoder.load(art, variant="fp32", verify=False)
    count = lambda t: int(fp32.count_tokens([t])[0])
    shapes = {
        "1x16": (exact_length_texts(count, 16, 1, prefix=QUERY_PREFIX), 10),
        "8x128": (exact_length_texts(count, 128, 8, prefix=DOC_PREFIX), 2),
        "32x128": (exact_length_texts(count, 128, 32, prefix=DOC_PREFIX), 1),
    }
    ctx = Context(art, reference=reference, threads=threads, log=log)
    nncf = make_system("openvino-int8", ctx)
    nncf.prepare()
    nncf.load()
    run = {"nncf": lambda t: nncf.encode(t, own_batching=False)}
    for label, d in dirs.items():
        enc = Encoder.load(d, variant=VARIANT, verify=False, threads=threads)
        run[label] = lambda t, enc=enc: enc.encode(t, batch_size=len(t))
    times: dict[str, dict[str, list[float]]] = {s: {k: [] for k in shapes} for s in run}
    for fn in run.values():
        for texts, _ in shapes.values():
            fn(texts)  # warm-up: OpenVINO compiles per shape
    for r in range(rounds):
        for shape, (texts, reps) in shapes.items():
            for label, fn in run.items():
                t0 = time.perf_counter()
                for _ in range(reps):
                    fn(texts)
                times[label][shape].append((time.perf_counter() - t0) / reps)
        log(f"speed round {r + 1}/{rounds}")
    nncf.close()
    ctx.close()
    return {
        label: {
            shape: {
                "ms": 1e3 * statistics.median(ts),
                "x_nncf": statistics.median(b / t for b, t in zip(times["nncf"][shape], ts)),
            }
            for shape, ts in per.items()
        }
        for label, per in times.items()
    }


def table(res: dict) -> str:
    labels = list(dict.fromkeys([*res.get("quality", {}), *res.get("speed", {})]))
    shapes = ("1x16", "8x128", "32x128")
    rows = [
        "| int8-openvino, activations | cos min | cos mean | top-10 en/ru | Spearman Δ en/ru | "
        + " | ".join(f"{s} × NNCF" for s in shapes)
        + " |",
        "|---|---:|---:|---:|---:|" + "---:|" * len(shapes),
    ]
    for label in labels:
        q, s = res.get("quality", {}).get(label), res.get("speed", {}).get(label)
        qcols = (
            f"{q['cos_min']:.5f} | {q['cos_mean']:.5f} | {'/'.join(f'{v:.3f}' for v in q['top10'].values())} | "
            + "/".join(f"{v:+.4f}" for v in q["spearman_delta"].values())
            if q
            else "– | – | – | –"
        )
        scols = " | ".join(f"{s[x]['x_nncf']:.2f}" if s else "–" for x in shapes)
        rows.append(f"| {label} | {qcols} | {scols} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    import onnx

    from rosberta_onnx import Manifest

    from ..harness.machine import cpu_facts
    from ..harness.runner import as_run

    p = argparse.ArgumentParser(prog="python -m benchmarks.studies.static_activations")
    p.add_argument("artifact", type=Path)
    p.add_argument("--sets", default="qkv,qkv+up,qkv+up+o,all", help=f"kinds made static, from {', '.join(SETS)}")
    p.add_argument("--how", default="minmax,mse")
    p.add_argument("--calibration", type=int, default=128)
    p.add_argument(
        "--split",
        type=int,
        default=0,
        help="the static MatMuls of --split-kinds keep their K largest input channels in float (LLM.int8)",
    )
    p.add_argument("--split-kinds", default="o+down", choices=sorted(SETS), help="the static kinds --split applies to")
    p.add_argument("--quality", action="store_true")
    p.add_argument("--pairs", type=int, default=500)
    p.add_argument("--speed", action="store_true")
    p.add_argument("--reference", help="the checkpoint (NNCF quantises its fp32 model for the speed comparison)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/static-activations"))
    a = p.parse_args(argv)
    if a.speed and not a.reference:
        p.error("--speed needs --reference CKPT (NNCF's int8 is quantised from it)")
    log = lambda msg: print(f"[static] {msg}", file=sys.stderr, flush=True)
    src = a.artifact / Manifest.read(a.artifact).variant(VARIANT).file
    g = onnx.load(str(src), load_external_data=False).graph
    kinds = matmul_kinds(g)
    inputs = sorted({n.input[0] for n in g.node if n.name in kinds})
    t0 = time.perf_counter()
    stats = collect_ranges(src, a.artifact, inputs, a.calibration)
    log(f"calibrated {len(inputs)} MatMul inputs on {a.calibration} sentences in {time.perf_counter() - t0:.0f} s")
    dirs = {"dynamic (as shipped)": a.artifact}
    tmp = tempfile.TemporaryDirectory(prefix="rosberta-static-")  # the rewritten graphs: as large as the variant
    work = Path(tmp.name)
    for how in a.how.split(","):
        for name in a.sets.split(","):
            chosen = {m for m, k in kinds.items() if k in SETS[name]}
            split = {m: a.split for m in chosen if a.split and kinds[m] in SETS[a.split_kinds]}
            label = (
                f"static {name} ({how}"
                + (f", {a.split} outlier channels in float on {a.split_kinds}" if split else "")
                + ")"
            )
            d = _artifact_with(a.artifact, work / f"{name}-{how}")
            write_static(src, d / src.name, stats, chosen, how, split=split)
            dirs[label] = d
    res: dict = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "machine": cpu_facts(),
        "artifact": str(a.artifact),
        "calibration_sentences": a.calibration,
        "reproduce": "python -m benchmarks.studies.static_activations " + as_run(argv),
    }
    if a.quality:
        res["quality"] = _quality(a.artifact, dirs, a.pairs, log)
        res["pairs_per_lang"] = a.pairs
    if a.speed:
        res["speed"] = _speed(a.artifact, a.reference, dirs, a.rounds, a.threads, log)
    a.out.mkdir(parents=True, exist_ok=True)
    save(a.out / "static_activations.json", res)
    md = (
        f"Static activations on `{a.artifact}` on {res['machine']['description']}, {a.threads} threads; quality on "
        f"{a.pairs} STS dev pairs per language against fp32; speed against NNCF OpenVINO int8 in the same rounds. "
        f"Reproduce: `{res['reproduce']}`\n\n" + table(res) + "\n"
    )
    save(a.out / "static_activations.md", md)
    print(md)
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
