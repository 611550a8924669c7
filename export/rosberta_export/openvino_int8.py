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

from .rowwise import Plan, weight_matmuls

__all__ = ["GROUP_SIZE", "openvino_options", "openvino_recipe", "write_openvino_int8"]

GROUP_SIZE = 256  # activation values per dynamic-quantisation scale (MiniLM RU top-10: g128 0.961, g256 0.957)


def openvino_options() -> dict[str, object]:
    """What the runtime passes to OpenVINO's compile_model. The exporter gates the variant with these on its
    own CPU and records them in the manifest, so the runtime runs exactly what was gated.

    The ops left in float (attention scores, LayerNorm, GELU, the activation quantisation itself) run in
    bf16 where this CPU computes bf16 natively (AVX512-BF16 or AMX), else in f32 -- the recorded hint says
    which one the gate saw. Measured on the full-size stand-in (Zen 4, 2 threads, same run, ratio to torch
    fp32): bf16 7.57x / 3.44x / 3.70x at 1x16 / 8x128 / 32x128 against f32's 6.35x / 3.40x / 3.49x; on MiniLM
    the gate figures did not move (cosine min 0.9992 vs 0.9993, RU top-10 0.957 vs 0.956). A CPU without
    bf16 that loads a bf16-gated artifact runs f32: the more precise of the two.
    """
    import openvino as ov

    bf16 = "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    return {"DYNAMIC_QUANTIZATION_GROUP_SIZE": GROUP_SIZE, "INFERENCE_PRECISION_HINT": "bf16" if bf16 else "f32"}


def openvino_recipe(options: dict[str, object], *, calibrated_on: int) -> str:
    return (
        "OpenVINO CPU plugin: MatMul weights S8 per output column (the row-wise recipe's SmoothQuant and GPTQ "
        f"weights calibrated on {calibrated_on} RU/EN STS train sentences, a DequantizeLinear each), activations "
        f"quantised at run time per group of {options['DYNAMIC_QUANTIZATION_GROUP_SIZE']} values along the "
        f"reduction axis; {options['INFERENCE_PRECISION_HINT']} elsewhere"
    )


def write_openvino_int8(raw: Path, out: Path, plans: dict[str, Plan]) -> Path:
    """Rewrite the unfused fp32 graph ``raw`` with ``plans`` (from :func:`.rowwise.plan_weights`)."""
    import onnx
    from onnx import helper, numpy_helper

    from .weights_io import load_graph

    lean = onnx.load(str(raw), load_external_data=False).graph
    model = load_graph(raw, without={n.input[1] for n in weight_matmuls(lean)})  # each replaced below
    g = model.graph
    inits = {i.name: i for i in g.initializer}
    before: dict[str, list] = {}  # MatMul name -> the nodes that feed it
    for n in weight_matmuls(g):
        plan, w, p = plans[n.name], n.input[1], f"ov_{n.name.replace('/', '_')}"
        g.initializer.remove(inits[w])
        g.initializer.extend(
            [numpy_helper.from_array(plan.wq, p + "_wq"), numpy_helper.from_array(plan.col, p + "_scol")]
        )
        before[n.name] = [
            helper.make_node("DequantizeLinear", [p + "_wq", p + "_scol"], [p + "_w"], name=p + "_Dequant", axis=1)
        ]
        n.input[1] = p + "_w"
        if plan.inv_smooth is not None:
            g.initializer.append(numpy_helper.from_array(plan.inv_smooth, p + "_inv_smooth"))
            before[n.name].append(
                helper.make_node("Mul", [n.input[0], p + "_inv_smooth"], [p + "_xsm"], name=p + "_Smooth")
            )
            n.input[0] = p + "_xsm"
    nodes = [d for n in g.node for d in (*before.get(n.name, ()), n)]
    del g.node[:]
    g.node.extend(nodes)
    onnx.save_model(model, str(out))
    return out
