"""Graph rewrites after quantisation or fusion: the same pooled output, less work for the engine running the file.

Each rewrite leaves the pooled embedding the same (max abs diff 0 on the full-size stand-in through OpenVINO with
the same weights; tests check both engines on the tiny stand-in; every export's parity and gate recompute it);
each is skipped, and reported as not applied, when the graph does not have the expected shape. The manifest
records what applied (``graph_rewrites``).

- **First-token tail** (:func:`first_token_tail`, CLS pooling only; every variant). Only the first token of
  the last layer's output is pooled, so everything in the last layer after attention (attention output
  projection, its LayerNorm, the FFN, the final LayerNorm, and in ``int8`` their activation quantisation) runs on
  that token alone: two ``Slice`` nodes, on the attention context and on the residual. Attention itself still
  reads every token. The graph's output becomes ``(b, 1, hidden)``, which CLS pooling reads as before. ~3% of
  the weight multiply-adds of a 24-layer model. It is applied after calibration, so the int8 weights are those
  calibrated on every token. The fp32 graph (and fp16, converted from it) gets it after onnxruntime's fusions,
  where the context is the last fused ``Attention``'s output and the residual enters a ``SkipLayerNormalization``.
- **Key transposes split** (:func:`split_key_transposes`, ``int8-openvino`` only). The exporter writes K as one
  ``Transpose`` to ``(b, heads, dim, seq)`` (the pattern onnxruntime's Attention fusion needs). OpenVINO's
  attention fusion does not take that transpose in and runs it alone, slowly (2.6% of an 8×128 run). Written as
  ``(b, heads, seq, dim)`` then a swap of the last two axes, OpenVINO folds the swap into the score MatMul and the
  rest into its fused attention kernel (0.3%).

Measured together on ``int8-openvino`` through ``OpenVinoSession`` (2 threads, 2 streams, full-size stand-in,
alternating): 8×128 1.046×, 32×128 1.058×, 1×16 1.025× faster than without them; CLS vectors identical.
"""

from __future__ import annotations

__all__ = ["rewrite_for_openvino", "rewrite_for_onnxruntime", "split_key_transposes", "first_token_tail", "describe"]

_KEY_PERM = [0, 2, 3, 1]  # (b, seq, heads, dim) -> (b, heads, dim, seq)


def _perm(node) -> list[int] | None:
    return next((list(a.ints) for a in node.attribute if a.name == "perm"), None)


def split_key_transposes(graph) -> int:
    """Every ``Transpose`` with perm (0, 2, 3, 1) that feeds a MatMul's second input becomes (0, 2, 1, 3)
    followed by (0, 1, 3, 2). Returns how many were split."""
    from onnx import helper

    key_inputs = {n.input[1] for n in graph.node if n.op_type == "MatMul"}
    nodes, count = [], 0
    for n in graph.node:
        if n.op_type == "Transpose" and _perm(n) == _KEY_PERM and n.output[0] in key_inputs:
            mid = n.output[0] + "_bhsd"
            nodes.append(helper.make_node("Transpose", [n.input[0]], [mid], name=n.name + "_bhsd", perm=[0, 2, 1, 3]))
            nodes.append(helper.make_node("Transpose", [mid], list(n.output), name=n.name + "_swap", perm=[0, 1, 3, 2]))
            count += 1
        else:
            nodes.append(n)
    del graph.node[:]
    graph.node.extend(nodes)
    return count


def _find_tail(graph):
    """(attention context Reshape, residual Add, residual input) of the last layer, or None.

    Post-LayerNorm encoder: the graph's one output is the last layer's final LayerNorm; the LayerNorm before it
    reads ``Add(attention branch, residual)``, where the residual is the previous LayerNorm's output. The branch
    starts from the attention context: ``Reshape(Transpose(MatMul(softmax, V)))``, the one such Reshape among
    the branch's inputs back to the previous LayerNorm (whatever quantisation ops lie between).
    """
    prod = {o: n for n in graph.node for o in n.output}
    lns = [n for n in graph.node if n.op_type == "LayerNormalization"]
    if len(graph.output) != 1 or len(lns) < 3 or prod.get(graph.output[0].name) is not lns[-1]:
        return None
    add = prod.get(lns[-2].input[0])
    if add is None or add.op_type != "Add" or len(add.input) != 2:
        return None
    residual = [i for i in add.input if prod.get(i) is lns[-3]]
    branch = [i for i in add.input if prod.get(i) is not lns[-3]]
    if len(residual) != 1 or len(branch) != 1:
        return None
    contexts, seen, todo = [], set(), [branch[0]]
    while todo:  # the branch's producers, back to (not into) LayerNorms and the graph's inputs
        n = prod.get(todo.pop())
        if n is None or id(n) in seen or n.op_type == "LayerNormalization":
            continue
        seen.add(id(n))
        up = prod.get(n.input[0]) if n.input else None
        if (
            n.op_type == "Reshape"
            and up is not None
            and up.op_type == "Transpose"
            and prod.get(up.input[0]) is not None
            and prod[up.input[0]].op_type == "MatMul"
        ):
            contexts.append(n)
            continue
        todo.extend(n.input)
    if len(contexts) != 1:
        return None
    return contexts[0], add, residual[0]


def _reaches(prod, name: str, target, stop: tuple[str, ...]) -> bool:
    """Whether ``name`` is computed from ``target``'s output, walking producers back, not through ``stop`` ops."""
    seen, todo = set(), [name]
    while todo:
        n = prod.get(todo.pop())
        if n is None or id(n) in seen or n.op_type in stop:
            continue
        if n is target:
            return True
        seen.add(id(n))
        todo.extend(n.input)
    return False


def _find_fused_tail(graph):
    """(last fused Attention, the SkipLayerNormalization after it, residual input) of onnxruntime's fused graph,
    or None.

    There the graph's output is the last layer's FFN ``SkipLayerNormalization``, whose skip input is the attention
    ``SkipLayerNormalization`` of the same layer; that one adds the attention branch (from the layer's fused
    ``Attention``) to the residual, which is the ``Attention``'s own input.
    """
    prod = {o: n for n in graph.node for o in n.output}
    norms = ("SkipLayerNormalization", "LayerNormalization")
    last = prod.get(graph.output[0].name) if len(graph.output) == 1 else None
    if last is None or last.op_type != "SkipLayerNormalization":
        return None
    before = [prod[i] for i in last.input[:2] if i in prod and prod[i].op_type == "SkipLayerNormalization"]
    attention = [n for n in graph.node if n.op_type == "Attention"]
    if len(before) != 1 or not attention:
        return None
    sln, residual = before[0], attention[-1].input[0]
    branch = [i for i in sln.input[:2] if i != residual]
    if residual not in sln.input[:2] or len(branch) != 1 or not _reaches(prod, branch[0], attention[-1], norms):
        return None
    return attention[-1], sln, residual


def first_token_tail(graph) -> bool:
    """Make the last layer after attention compute only the first token (see the module doc). False, and the
    graph unchanged, when its shape is not the post-LayerNorm encoder this expects."""
    import numpy as np
    from onnx import helper, numpy_helper

    found = _find_tail(graph) or _find_fused_tail(graph)
    if found is None:
        return False
    context, add, residual = found
    ctx = context.output[0]
    start, stop = "first_token_start", "first_token_stop"
    graph.initializer.extend(
        [
            numpy_helper.from_array(np.array([0], np.int64), start),
            numpy_helper.from_array(np.array([1], np.int64), stop),
        ]
    )
    # Slice(x, starts=[0], ends=[1], axes=[1]): the first position of a (b, seq, hidden) tensor
    cut_ctx, cut_res = ctx + "_first", residual + "_first"
    for n in graph.node:  # every reader of the context reads its first position instead
        for k, name in enumerate(n.input):
            if name == ctx:
                n.input[k] = cut_ctx
    add.input[list(add.input).index(residual)] = cut_res
    after = {
        id(context): helper.make_node("Slice", [ctx, start, stop, stop], [cut_ctx], name=context.name + "_FirstToken")
    }
    before = {
        id(add): helper.make_node("Slice", [residual, start, stop, stop], [cut_res], name=add.name + "_FirstToken")
    }
    nodes = [
        m
        for n in graph.node
        for m in ((before[id(n)], n) if id(n) in before else (n, after[id(n)]) if id(n) in after else (n,))
    ]
    del graph.node[:]
    graph.node.extend(nodes)
    seq = graph.output[0].type.tensor_type.shape.dim[1]
    seq.ClearField("dim_param")
    seq.dim_value = 1
    return True


def rewrite_for_onnxruntime(graph, *, pooling: str) -> dict[str, int]:
    """The rewrites for the graphs onnxruntime runs (``int8``, and the fused ``fp32`` that ``fp16`` is converted
    from); returns what was applied (recorded in the manifest)."""
    return {"first_token_tail": int(pooling == "cls" and first_token_tail(graph))}


def rewrite_for_openvino(graph, *, pooling: str) -> dict[str, int]:
    """The rewrites for the ``int8-openvino`` variant; returns what was applied (recorded in the manifest)."""
    done = {"key_transposes_split": split_key_transposes(graph)}
    done["first_token_tail"] = int(pooling == "cls" and first_token_tail(graph))
    return done


_IN_WORDS = {
    "first_token_tail": "the last layer after attention on the first token only (CLS pooling)",
    "key_transposes_split": "key transposes split for OpenVINO's attention fusion",
    "int8_embeddings": "embedding tables int8 with a scale per row",
}


def describe(applied: dict[str, int]) -> str:
    """The rewrites that applied, in words for a variant's recipe: '; graph: …', or '' when none did."""
    words = [_IN_WORDS[k] for k, n in applied.items() if n]
    return f"; graph: {', '.join(words)}" if words else ""
