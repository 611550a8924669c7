"""``int8-avx2``: onnxruntime's int8 graph with its GEMM weights stored unsigned, for x86 CPUs without VNNI.

onnxruntime multiplies U8 activations by S8 weights with ``vpmaddubsw`` where the CPU has no VNNI (AVX2, AVX-512
without VNNI): each pair of products is summed into a signed 16-bit lane, which saturates once both are large (255 x
127 x 2 > 32767). With the row-wise recipe's activations centred on 128, that is common: on MiniLM, under an
emulated Haswell, the int8 file gives cosine min 0.992 against fp32 (0.9995 with VNNI), below the gate.

The same weights stored as U8 with zero point 128 (``w + 128``) send the GEMM to onnxruntime's U8xU8 kernel, which
widens both operands to 16 bits before multiplying (``vpmaddwd``): no product can saturate, and the integer results
are those of the int8 file exactly (measured: the same vectors to the last bit on MiniLM, emulated Haswell and native
AMX alike). The cost is speed on CPUs that have VNNI, where U8xU8 does not use it (~1.8x the int8 file's time on
AMX, measured), so ``auto`` considers this variant only where the int8 file is not exact.
"""

from __future__ import annotations

import numpy as np

__all__ = ["UNSIGNED_RECIPE", "unsigned_weights"]

UNSIGNED_RECIPE = (
    "GEMM weights stored U8 with zero point 128 (U8xU8 products widened to 16 bits before summing: exact on x86 "
    "without VNNI, where U8xS8 saturates)"
)
# op type -> (weight input, weight zero point input) of onnxruntime's integer GEMMs
_WEIGHT_INPUTS = {"MatMulIntegerToFloat": (1, 5), "MatMulInteger": (1, 3), "DynamicQuantizeMatMul": (1, 3)}


def unsigned_weights(graph) -> int:
    """Rewrite every S8 GEMM weight of ``graph`` in place to U8 (``w + 128``) with zero point ``z + 128``; returns
    how many GEMMs now read U8 weights. A weight shared by several GEMMs is converted once."""
    from onnx import numpy_helper

    inits = {i.name: i for i in graph.initializer}
    done: dict[str, str] = {}  # S8 zero point (or '' for none) -> its U8 initializer
    converted: set[str] = set()
    count = 0
    for node in graph.node:
        if node.op_type not in _WEIGHT_INPUTS:
            continue
        w_at, zp_at = _WEIGHT_INPUTS[node.op_type]
        name = node.input[w_at]
        if name not in inits:
            continue
        if name not in converted:
            w = numpy_helper.to_array(inits[name])
            if w.dtype != np.int8:
                continue
            inits[name].CopyFrom(numpy_helper.from_array((w.astype(np.int16) + 128).astype(np.uint8), name))
            converted.add(name)
        zp = node.input[zp_at] if len(node.input) > zp_at else ""
        if zp not in done:
            old = numpy_helper.to_array(inits[zp]) if zp else np.array(0, dtype=np.int8)
            if old.dtype != np.int8:
                raise ValueError(f"{node.name}: weight zero point {zp!r} is {old.dtype}, expected int8")
            new_name = f"{zp or 'w'}_u8_zero_point"
            graph.initializer.append(numpy_helper.from_array((old.astype(np.int16) + 128).astype(np.uint8), new_name))
            inits[new_name] = graph.initializer[-1]
            done[zp] = new_name
        inputs = list(node.input) + [""] * (zp_at + 1 - len(node.input))
        inputs[zp_at] = done[zp]
        del node.input[:]
        node.input.extend(inputs)
        count += 1
    return count
