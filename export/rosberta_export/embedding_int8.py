"""Embedding tables as int8 rows with one scale per row: the int8 variants' last float weights.

Row-wise int8 MatMuls leave the word embeddings in float32: 50 265 × 1 024 values, 206 MB of the full-size model's
513 MB int8 file, and more than half of MiniLM's. Each ``Gather`` that reads a large 2-D float table becomes::

    rows   = Gather(table_int8, ids)                 int8 (…, hidden): symmetric, round to nearest
    scale  = Gather(row_scale, ids)                  float (…): max |row| / 127
    out    = Cast(rows, float) * Unsqueeze(scale, -1)

— standard ONNX ops, so onnxruntime, OpenVINO and onnxruntime-web run it alike. A row's step is 1/254 of its
largest value: the per-value error is the int8 MatMuls' kind, far below it in effect (the embedding is summed with
the position embedding and normalised before any MatMul reads it). The gate measures what it costs.
"""

from __future__ import annotations

import numpy as np

__all__ = ["quantize_embedding_tables", "MIN_ROWS"]

# Tables with fewer rows are not worth a Gather of scales (the position table has 514; token types 1 or 2).
MIN_ROWS = 256


def quantize_embedding_tables(graph, *, min_rows: int = MIN_ROWS) -> int:
    """Rewrite ``graph`` in place; returns how many tables became int8."""
    from onnx import TensorProto, helper, numpy_helper

    inits = {i.name: i for i in graph.initializer}
    done: dict[str, tuple[str, str]] = {}  # float table -> (int8 table, row scales)
    nodes = []
    for node in graph.node:
        table = node.input[0] if node.op_type == "Gather" and node.input else ""
        init = inits.get(table)
        if init is None or init.data_type != TensorProto.FLOAT or len(init.dims) != 2 or init.dims[0] < min_rows:
            nodes.append(node)
            continue
        if table not in done:
            w = numpy_helper.to_array(init).astype(np.float32)
            scale = np.abs(w).max(axis=1) / 127.0
            scale[scale == 0] = 1.0  # an all-zero row (padding) stays zero at any scale
            q = np.clip(np.rint(w / scale[:, None]), -127, 127).astype(np.int8)
            done[table] = (table + "_int8", table + "_row_scale")
            graph.initializer.extend(
                [
                    numpy_helper.from_array(q, done[table][0]),
                    numpy_helper.from_array(scale.astype(np.float32), done[table][1]),
                ]
            )
        q_name, s_name = done[table]
        out, ids, base = node.output[0], node.input[1], node.name or node.output[0]
        axes = base + "_last_axis"
        graph.initializer.append(numpy_helper.from_array(np.array([-1], dtype=np.int64), axes))
        nodes += [
            helper.make_node("Gather", [q_name, ids], [base + "_q_rows"], name=base + "_q_rows", axis=0),
            helper.make_node("Cast", [base + "_q_rows"], [base + "_rows"], name=base + "_rows", to=TensorProto.FLOAT),
            helper.make_node("Gather", [s_name, ids], [base + "_scales"], name=base + "_scales", axis=0),
            helper.make_node("Unsqueeze", [base + "_scales", axes], [base + "_scale"], name=base + "_scale"),
            helper.make_node("Mul", [base + "_rows", base + "_scale"], [out], name=base + "_dequant"),
        ]
    if not done:
        return 0
    still_read = {i for n in nodes for i in n.input}
    keep = [i for i in graph.initializer if i.name not in done or i.name in still_read]
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.initializer[:]
    graph.initializer.extend(keep)
    return len(done)
