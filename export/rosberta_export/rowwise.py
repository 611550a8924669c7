"""Dynamic int8 with one activation scale per row (per token), from standard ONNX ops.

onnxruntime's dynamic quantisation gives each activation tensor a single scale: one outlier token
sets the step for every token in the batch. On real trained weights (MiniLM) that costs cosine
0.976 min against fp32, while quantising the weights alone costs almost nothing. Here each MatMul
with a constant weight ``W (K, N)`` becomes::

    x'     = x / s_smooth (+ shift)                  calibrated per input channel (see below)
    s_row  = max(|x'|, axis=-1) / 127                one scale per token (row of x)
    x_q    = QuantizeLinear(x' / s_row, 1, 128)      uint8, symmetric around 128
    y      = MatMulInteger(x_q, W_q, 128) * s_row * s_col  (- shift @ W)

U8 activations x S8 weights is the combination VNNI (and AMX) multiply natively. Attention's
activation x activation MatMuls stay in fp32, as in onnxruntime's own dynamic recipe.

Calibration (per-channel min/max of each MatMul input over a few hundred sentences) adds:

- smoothing (SmoothQuant): channel outliers move into the weights, x / s and s * W with
  s = max|x|^a / max|W|^(1-a), so one outlier channel no longer coarsens every other channel's step;
- a shift for inputs that are (almost) never negative — GELU's output, whose minimum is -0.17 —
  so they use the whole 0..255 range instead of half of it; ``shift @ W`` is subtracted exactly;
- a sensitivity ranking: each MatMul's relative output error, simulated in numpy on calibration
  rows, so the few worst can be left in fp32 by measurement rather than by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["ROWWISE_RECIPE", "Plan", "plan_matmul", "fake_quant", "channel_stats", "sensitivity", "quantize_rowwise"]

ROWWISE_RECIPE = ("dynamic int8, per-row activation scales: MatMul weights S8 per output column, activations U8 "
                  "with one scale per token (U8S8, MatMulInteger), fp32 attention scores and elsewhere")


def _weight_matmuls(graph) -> list:
    inits = {i.name: i for i in graph.initializer}
    return [n for n in graph.node
            if n.op_type == "MatMul" and n.input[1] in inits and len(inits[n.input[1]].dims) == 2]


@dataclass(frozen=True)
class Plan:
    """How one MatMul is quantised."""

    inv_smooth: np.ndarray | None  # (K,) multiply x by this first
    shift: np.ndarray | None  # (K,) then add this (unsigned range)
    wq: np.ndarray  # (K, N) int8
    col: np.ndarray  # (N,) weight scale per output column
    corr: np.ndarray | None  # (N,) shift @ dequantised W, subtracted after the product


def plan_matmul(w: np.ndarray, rng: tuple[np.ndarray, np.ndarray] | None, *, alpha: float, shift_floor: float) -> Plan:
    inv_smooth = shift = corr = None
    w = w.astype(np.float32)
    if rng is not None:
        lo, hi = (r.astype(np.float32) for r in rng)
        xmax = np.maximum(np.maximum(np.abs(lo), np.abs(hi)), 1e-5)
        wmax = np.maximum(np.abs(w).max(axis=1), 1e-5)
        sc = np.clip(xmax ** alpha / wmax ** (1.0 - alpha), 1e-2, 1e2).astype(np.float32)
        w = w * sc[:, None]
        inv_smooth = (1.0 / sc).astype(np.float32)
        if lo.min() >= shift_floor:
            shift = (np.maximum(-lo, 0.0) / sc).astype(np.float32)
    col = np.abs(w).max(axis=0) / 127.0
    col = np.where(col > 0, col, 1.0).astype(np.float32)
    wq = np.clip(np.rint(w / col), -127, 127).astype(np.int8)
    if shift is not None:
        corr = (shift.astype(np.float64) @ (wq.astype(np.float64) * col[None, :])).astype(np.float32)
    return Plan(inv_smooth, shift, wq, col, corr)


def fake_quant(x: np.ndarray, p: Plan) -> np.ndarray:
    """What the quantised graph computes for rows ``x`` (n, K), in numpy."""
    if p.inv_smooth is not None:
        x = x * p.inv_smooth
    if p.shift is not None:
        x = x + p.shift
        s = np.maximum(x.max(axis=1, keepdims=True) / 255.0, 1e-10)
        q = np.clip(np.rint(x / s), 0, 255)
    else:
        s = np.maximum(np.abs(x).max(axis=1, keepdims=True) / 127.0, 1e-10)
        q = np.clip(np.rint(x / s), -128, 127)
    y = (q @ p.wq.astype(np.float32)) * s * p.col
    return y - p.corr if p.corr is not None else y


def channel_stats(raw: Path, tensors: list[str], batches, *, keep_rows: int = 0):
    """Per-channel (min, max) of the named activation tensors over calibration ``batches`` of
    (ids, mask), and up to ``keep_rows`` sample rows (tokens) of each, padded positions excluded."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    model = onnx.load(str(raw), load_external_data=False)
    for t in tensors:
        model.graph.output.append(helper.make_tensor_value_info(t, TensorProto.FLOAT, None))
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # keep every named tensor alive
    # Saved beside ``raw`` so that its external weight file (if any) resolves; weights are not copied.
    probe = raw.with_name(raw.stem + ".calibration.onnx")
    onnx.save_model(model, str(probe))
    try:
        sess = ort.InferenceSession(str(probe), so, providers=["CPUExecutionProvider"])
    finally:
        probe.unlink()
    ranges: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    rows: dict[str, list[np.ndarray]] = {t: [] for t in tensors}
    kept = 0
    for ids, mask in batches:
        vals = sess.run(tensors, {"input_ids": ids, "attention_mask": mask})
        keep = mask.astype(bool)
        take = max(0, min(keep_rows - kept, int(keep.sum())))
        for name, v in zip(tensors, vals):
            r = v[keep]
            lo, hi = r.min(axis=0), r.max(axis=0)
            if name in ranges:
                lo, hi = np.minimum(ranges[name][0], lo), np.maximum(ranges[name][1], hi)
            ranges[name] = (lo, hi)
            if take:
                rows[name].append(r[:take])
        kept += take
    samples = {k: np.concatenate(v) for k, v in rows.items() if v}
    return ranges, samples


def sensitivity(raw: Path, ranges, samples, *, alpha: float, shift_floor: float) -> dict[str, float]:
    """Relative output error ``|y_q - y| / |y|`` of each constant-weight MatMul on calibration rows."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(raw))
    inits = {i.name: i for i in model.graph.initializer}
    out = {}
    for node in _weight_matmuls(model.graph):
        x = samples[node.input[0]]
        w = numpy_helper.to_array(inits[node.input[1]]).astype(np.float32)
        y = x @ w
        yq = fake_quant(x, plan_matmul(w, ranges.get(node.input[0]), alpha=alpha, shift_floor=shift_floor))
        out[node.name] = float(np.linalg.norm(yq - y) / max(np.linalg.norm(y), 1e-12))
    return out


def quantize_rowwise(raw: Path, out: Path, *, skip: frozenset[str] | set[str] = frozenset(),
                     ranges: dict[str, tuple[np.ndarray, np.ndarray]] | None = None, alpha: float = 0.5,
                     shift_floor: float = -0.2, pack: bool = False) -> Path:
    """Rewrite every constant-weight MatMul of ``raw`` (fp32 ONNX) except those named in ``skip``.

    With ``pack``, MatMuls that read the same input (Q, K and V read one LayerNorm output) become one:
    the input is smoothed, scaled and quantised once, multiplied by the concatenated weights in one
    larger GEMM, and split. Off by default: the shared smoothing costs V precision (MiniLM cosine min
    0.9961 packed vs 0.9969 not) and was no faster here. ``MatMulIntegerToFloat`` (an onnxruntime contrib op, as the fused fp32 graph's
    Attention is) applies the per-column scales inside the GEMM's epilogue.
    """
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(raw))
    g = model.graph
    inits = {i.name: i for i in g.initializer}
    consts = [
        numpy_helper.from_array(np.array(1.0 / 127.0, dtype=np.float32), "rw_inv127"),
        numpy_helper.from_array(np.array(1.0 / 255.0, dtype=np.float32), "rw_inv255"),
        numpy_helper.from_array(np.array(1e-10, dtype=np.float32), "rw_eps"),
        numpy_helper.from_array(np.array(1.0, dtype=np.float32), "rw_one"),
        numpy_helper.from_array(np.array(128, dtype=np.uint8), "rw_zp"),
        numpy_helper.from_array(np.array(0, dtype=np.uint8), "rw_zp0"),
    ]
    groups: dict[str, list] = {}
    for n in _weight_matmuls(g):
        if n.name not in skip:
            groups.setdefault(n.input[0] if pack else n.name, []).append(n)
    first = {nodes[0].name: nodes[0].input[0] for nodes in groups.values()}
    members = {n.name for nodes in groups.values() for n in nodes}
    new_nodes, drop_inits, add_inits = [], set(), []
    for node in g.node:
        if node.name not in members:
            new_nodes.append(node)
            continue
        if node.name not in first:
            continue  # emitted with the first MatMul of its group
        x = first[node.name]
        group = groups[x if pack else node.name]
        ws = [numpy_helper.to_array(inits[n.input[1]]) for n in group]
        drop_inits.update(n.input[1] for n in group)
        p = f"rw_{node.name.replace('/', '_')}"
        plan = plan_matmul(np.concatenate(ws, axis=1), (ranges or {}).get(x), alpha=alpha, shift_floor=shift_floor)
        add_inits += [numpy_helper.from_array(plan.wq, p + "_wq"), numpy_helper.from_array(plan.col, p + "_scol")]
        if plan.inv_smooth is not None:
            add_inits.append(numpy_helper.from_array(plan.inv_smooth, p + "_inv_smooth"))
            new_nodes.append(helper.make_node("Mul", [x, p + "_inv_smooth"], [p + "_xsm"], name=p + "_Smooth"))
            x = p + "_xsm"
        if plan.shift is not None:  # non-negative after the shift: max / 255 per row, zero point 0
            add_inits.append(numpy_helper.from_array(plan.shift, p + "_shift"))
            new_nodes.append(helper.make_node("Add", [x, p + "_shift"], [p + "_xsh"], name=p + "_Shift"))
            x = p + "_xsh"
            rmax, inv, zp = x, "rw_inv255", "rw_zp0"
        else:  # symmetric: max |x| / 127 per row, zero point 128
            new_nodes.append(helper.make_node("Abs", [x], [p + "_abs"], name=p + "_Abs"))
            rmax, inv, zp = p + "_abs", "rw_inv127", "rw_zp"
        y = group[0].output[0] if len(group) == 1 and plan.corr is None else p + "_y"
        yrow = y if plan.corr is None else p + "_ynoshift"
        new_nodes += [
            helper.make_node("ReduceMax", [rmax], [p + "_max"], name=p + "_ReduceMax", axes=[-1], keepdims=1),
            helper.make_node("Mul", [p + "_max", inv], [p + "_s0"], name=p + "_Scale"),
            helper.make_node("Max", [p + "_s0", "rw_eps"], [p + "_srow"], name=p + "_ScaleFloor"),
            helper.make_node("Div", [x, p + "_srow"], [p + "_xs"], name=p + "_Div"),
            helper.make_node("QuantizeLinear", [p + "_xs", "rw_one", zp], [p + "_xq"], name=p + "_Quant"),
            helper.make_node("MatMulIntegerToFloat", [p + "_xq", p + "_wq", "rw_one", p + "_scol", zp], [p + "_ycol"],
                             name=p + "_MatMulIntegerToFloat", domain="com.microsoft"),
            helper.make_node("Mul", [p + "_ycol", p + "_srow"], [yrow], name=p + "_RowScale"),
        ]
        if plan.corr is not None:
            add_inits.append(numpy_helper.from_array(plan.corr, p + "_shift_corr"))
            y_final = group[0].output[0] if len(group) == 1 else y
            new_nodes.append(helper.make_node("Sub", [yrow, p + "_shift_corr"], [y_final], name=p + "_Unshift"))
        if len(group) > 1:
            sizes = numpy_helper.from_array(np.array([w.shape[1] for w in ws], dtype=np.int64), p + "_split")
            add_inits.append(sizes)
            new_nodes.append(helper.make_node("Split", [y, p + "_split"], [n.output[0] for n in group], name=p + "_Split",
                                              axis=-1))
    del g.node[:]
    g.node.extend(new_nodes)
    keep = [i for i in g.initializer if i.name not in drop_inits]
    del g.initializer[:]
    g.initializer.extend(keep + add_inits + consts)
    if not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    onnx.save_model(model, str(out))
    return out
