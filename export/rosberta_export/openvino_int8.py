"""The ``int8-openvino`` variant: the row-wise recipe's int8 weights, for OpenVINO's CPU plugin.

A plain ONNX file (standard ops only): every constant-weight MatMul reads its weight as int8 per output
column behind a ``DequantizeLinear``, and its input through the recipe's SmoothQuant ``Mul``. OpenVINO
reads that as a weight-compressed model; its CPU plugin then quantises each MatMul's activations at run
time in groups of ``DYNAMIC_QUANTIZATION_GROUP_SIZE`` values along the reduction axis and multiplies in
int8 (VNNI/AMX). So the weights (smoothing and GPTQ rounding included) are exactly those of the
onnxruntime ``int8`` variant -- one :class:`~.rowwise.Plan` per MatMul serves both -- and the activation
scales are finer still (one per 256 values of a token instead of one per token). The GELU shift is not
used: OpenVINO's activation groups are symmetric.

Measured side by side in ``benchmarks/int8_recipes.py``: on MiniLM the same gate figures as ``int8``
(cosine min 0.9993, RU top-10 0.957), and faster on the full-size stand-in on this CPU (Zen 4, VNNI).
"""

from __future__ import annotations

from pathlib import Path

from .rowwise import Plan, _weight_matmuls

__all__ = ["OPENVINO_RECIPE", "OPENVINO_OPTIONS", "write_openvino_int8"]

# What the runtime passes to OpenVINO's compile_model; the exporter gates the variant with these and
# records them in the manifest, so the runtime runs exactly what was gated. f32 inference precision:
# on bf16-capable CPUs OpenVINO would otherwise run the non-quantised ops in bf16.
OPENVINO_OPTIONS = {"DYNAMIC_QUANTIZATION_GROUP_SIZE": 256, "INFERENCE_PRECISION_HINT": "f32"}
OPENVINO_RECIPE = ("OpenVINO CPU plugin: MatMul weights S8 per output column (the row-wise recipe's SmoothQuant and "
                   "GPTQ weights, a DequantizeLinear each), activations quantised at run time per group of "
                   f"{OPENVINO_OPTIONS['DYNAMIC_QUANTIZATION_GROUP_SIZE']} values along the reduction axis; "
                   "fp32 elsewhere")


def write_openvino_int8(raw: Path, out: Path, plans: dict[str, Plan]) -> Path:
    """Rewrite the unfused fp32 graph ``raw`` with ``plans`` (from :func:`.rowwise.plan_weights`)."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(raw))
    g = model.graph
    inits = {i.name: i for i in g.initializer}
    before: dict[str, list] = {}  # MatMul name -> the nodes that feed it
    for n in _weight_matmuls(g):
        plan, w, p = plans[n.name], n.input[1], f"ov_{n.name.replace('/', '_')}"
        g.initializer.remove(inits[w])
        g.initializer.extend([numpy_helper.from_array(plan.wq, p + "_wq"), numpy_helper.from_array(plan.col, p + "_scol")])
        before[n.name] = [helper.make_node("DequantizeLinear", [p + "_wq", p + "_scol"], [p + "_w"], name=p + "_Dequant",
                                           axis=1)]
        n.input[1] = p + "_w"
        if plan.inv_smooth is not None:
            g.initializer.append(numpy_helper.from_array(plan.inv_smooth, p + "_inv_smooth"))
            before[n.name].append(helper.make_node("Mul", [n.input[0], p + "_inv_smooth"], [p + "_xsm"], name=p + "_Smooth"))
            n.input[0] = p + "_xsm"
    nodes = [d for n in g.node for d in (*before.get(n.name, ()), n)]
    del g.node[:]
    g.node.extend(nodes)
    onnx.save_model(model, str(out))
    return out
