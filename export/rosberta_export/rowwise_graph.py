"""The row-wise int8 graph for onnxruntime: each planned MatMul rewritten with one activation scale per row (see
:mod:`.rowwise` for the recipe and the plans)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .rowwise import Calibration, Plan, plan_matmul, weight_matmuls

__all__ = ["quantize_rowwise"]


def _consumers(graph) -> dict[str, list]:
    out: dict[str, list] = {}
    for n in graph.node:
        for i in n.input:
            out.setdefault(i, []).append(n)
    return out


def quantize_rowwise(
    raw: Path,
    out: Path,
    *,
    skip: frozenset[str] | set[str] = frozenset(),
    cal: Calibration | None = None,
    alpha: float = 0.5,
    shift_floor: float = -0.2,
    blocked_quantize: bool = True,
    merge_shared: bool = False,
    plans: dict[str, Plan] | None = None,
) -> Path:
    """Rewrite every constant-weight MatMul of ``raw`` (fp32 ONNX) except those named in ``skip``.

    ``MatMulIntegerToFloat`` (an onnxruntime contrib op, as the fused fp32 graph's Attention is) applies
    the per-column scales inside the GEMM's epilogue; the per-row scale is one Mul after it. The shift
    correction is folded into the bias that follows the MatMul. With ``blocked_quantize`` the row
    scale goes straight into an opset-21 ``QuantizeLinear`` (block size = the row length) instead of a
    Div and a scale-1 QuantizeLinear: one pass over the activations fewer. With ``merge_shared`` the
    MatMuls that read the same input (attention's query, key and value) become one: their weights are
    concatenated (smoothed and rounded together, as they see the same activations), the input is
    quantised once, one wider GEMM runs and a Split hands each its columns. Off by default: on the
    full-size stand-in it was ~3% faster at 8x128 (within run-to-run noise), and on MiniLM the shared
    smoothing cost RU top-10 overlap (0.957 -> 0.952 of the gate's 0.95). ``plans`` (from
    :func:`plan_weights` with the same calibration and settings) are used for unmerged MatMuls instead
    of planning them again.
    """
    import onnx
    from onnx import helper, numpy_helper

    from .weights_io import load_graph, read_initializer

    lean = onnx.load(str(raw), load_external_data=False).graph
    # the weights this rewrite replaces stay on disk, read only where a MatMul is planned here
    model = load_graph(raw, without={n.input[1] for n in weight_matmuls(lean) if n.name not in skip})
    g = model.graph
    inits = {i.name: i for i in g.initializer}
    users = _consumers(g)
    consts = [
        numpy_helper.from_array(np.array(1.0 / 127.0, dtype=np.float32), "rw_inv127"),
        numpy_helper.from_array(np.array(1.0 / 255.0, dtype=np.float32), "rw_inv255"),
        numpy_helper.from_array(np.array(1e-10, dtype=np.float32), "rw_eps"),
        numpy_helper.from_array(np.array(1.0, dtype=np.float32), "rw_one"),
        numpy_helper.from_array(np.array(128, dtype=np.uint8), "rw_zp"),
        numpy_helper.from_array(np.array(0, dtype=np.uint8), "rw_zp0"),
        numpy_helper.from_array(np.array([-1], dtype=np.int64), "rw_last_axis"),
    ]
    groups: dict[str, list] = {}  # one quantised GEMM each: the MatMuls it replaces, in graph order
    for n in weight_matmuls(g):
        if n.name not in skip:
            groups.setdefault(n.input[0] if merge_shared else n.name, []).append(n)
    first = {members[0].name: members for members in groups.values()}
    todo = {n.name for members in groups.values() for n in members}
    new_nodes: list = []
    drop_inits: set[str] = set()
    add_inits: list = []
    for node in g.node:
        if node.name not in todo:
            new_nodes.append(node)
            continue
        if node.name not in first:
            continue  # emitted with the first MatMul of its group
        members = first[node.name]
        x = node.input[0]
        ws = [tuple(int(d) for d in inits[n.input[1]].dims) for n in members]  # (K, N) of each weight
        k = ws[0][0]
        drop_inits.update(n.input[1] for n in members)
        p = f"rw_{node.name.replace('/', '_')}"
        if plans is not None and len(members) == 1:
            plan = plans[node.name]
        else:
            arrays = [read_initializer(raw, inits[n.input[1]]) for n in members]
            plan = plan_matmul(
                arrays[0] if len(arrays) == 1 else np.concatenate(arrays, axis=1),
                cal.ranges.get(x) if cal else None,
                alpha=alpha,
                shift_floor=shift_floor,
                gram=cal.grams.get(x) if cal else None,
            )
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
        new_nodes += [
            # ReduceMax takes its axes as an attribute up to opset 17, as an input from opset 18
            helper.make_node("ReduceMax", [rmax, "rw_last_axis"], [p + "_max"], name=p + "_ReduceMax", keepdims=1)
            if blocked_quantize
            else helper.make_node("ReduceMax", [rmax], [p + "_max"], name=p + "_ReduceMax", axes=[-1], keepdims=1),
            helper.make_node("Mul", [p + "_max", inv], [p + "_s0"], name=p + "_Scale"),
            helper.make_node("Max", [p + "_s0", "rw_eps"], [p + "_srow"], name=p + "_ScaleFloor"),
        ]
        if blocked_quantize:  # zero point shaped like the scale, as blocked quantisation requires
            new_nodes += [
                helper.make_node("Shape", [p + "_srow"], [p + "_sshape"], name=p + "_ScaleShape"),
                helper.make_node("Expand", [zp, p + "_sshape"], [p + "_zprow"], name=p + "_ZeroPoint"),
                helper.make_node(
                    "QuantizeLinear",
                    [x, p + "_srow", p + "_zprow"],
                    [p + "_xq"],
                    name=p + "_Quant",
                    axis=-1,
                    block_size=k,
                ),
            ]
        else:
            new_nodes += [
                helper.make_node("Div", [x, p + "_srow"], [p + "_xs"], name=p + "_Div"),
                helper.make_node("QuantizeLinear", [p + "_xs", "rw_one", zp], [p + "_xq"], name=p + "_Quant"),
            ]
        # each member's output: the shift correction joins the bias that follows it, else a Sub after the Split
        outs, unshift, lo = [], [], 0
        for i, (n, wi) in enumerate(zip(members, ws)):
            y, hi = n.output[0], lo + wi[1]
            bias = _bias_after(y, users, inits) if plan.corr is not None else None
            if bias is not None and plan.corr is not None:  # y + b - corr
                b = numpy_helper.to_array(bias).astype(np.float32) - plan.corr[lo:hi]
                bias.CopyFrom(numpy_helper.from_array(b.astype(np.float32), bias.name))
            if plan.corr is None or bias is not None:
                outs.append(y)
            else:
                outs.append(f"{p}_{i}_noshift")
                add_inits.append(numpy_helper.from_array(plan.corr[lo:hi], f"{p}_{i}_shift_corr"))
                unshift.append(helper.make_node("Sub", [outs[-1], f"{p}_{i}_shift_corr"], [y], name=f"{p}_{i}_Unshift"))
            lo = hi
        new_nodes.append(
            helper.make_node(
                "MatMulIntegerToFloat",
                [p + "_xq", p + "_wq", "rw_one", p + "_scol", zp],
                [p + "_ycol"],
                name=p + "_MatMulIntegerToFloat",
                domain="com.microsoft",
            )
        )
        if len(members) == 1:
            new_nodes.append(helper.make_node("Mul", [p + "_ycol", p + "_srow"], outs, name=p + "_RowScale"))
        else:
            add_inits.append(numpy_helper.from_array(np.array([wi[1] for wi in ws], dtype=np.int64), p + "_parts"))
            new_nodes += [
                helper.make_node("Mul", [p + "_ycol", p + "_srow"], [p + "_yrow"], name=p + "_RowScale"),
                helper.make_node("Split", [p + "_yrow", p + "_parts"], outs, name=p + "_Split", axis=-1),
            ]
        new_nodes += unshift
    del g.node[:]
    g.node.extend(new_nodes)
    keep = [i for i in g.initializer if i.name not in drop_inits]
    del g.initializer[:]
    g.initializer.extend(keep + add_inits + consts)
    if blocked_quantize:  # QuantizeLinear's block_size arrived in opset 21; the rest of the graph is unchanged by it
        for o in model.opset_import:
            if o.domain in ("", "ai.onnx"):
                o.version = max(o.version, 21)
    if not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    onnx.save_model(model, str(out))
    return out


def _bias_after(y: str, users: dict[str, list], inits: dict) -> Any:
    """The 1-D constant bias of the single Add that reads ``y``, if that is all that reads it."""
    readers = users.get(y, [])
    if len(readers) != 1 or readers[0].op_type != "Add":
        return None
    other = [i for i in readers[0].input if i != y]
    if len(other) != 1 or other[0] not in inits or len(inits[other[0]].dims) != 1:
        return None
    if len(users.get(other[0], [])) != 1:
        return None  # a bias shared with another node cannot absorb this MatMul's correction
    return inits[other[0]]
