"""The unfused fp32 graph cut into segments at its LayerNormalization outputs, so that calibration can run the model
one segment (half a transformer layer) at a time.

Why: the row-wise recipe's GPTQ rounding needs ``X^T X`` of every MatMul input over all calibration tokens. Through
the whole graph at once, every one of them is held until the last batch (1.8 GB of float32 at full size, on top of
the session's 1.4 GB of weights). Segment by segment, each is complete as soon as its segment has seen every batch:
the caller plans that segment's weights and lets go of them, and only one segment's weights are in memory. The
activations carried between segments are the calibration tokens' hidden states (~170 MB at full size).

A cut is only taken where it is one: the segment's nodes, traced back from its outputs, may reach nothing before the
cut but the attention mask (a graph input) and constants. In a post-LayerNorm encoder (BERT, RoBERTa) every
LayerNorm output is such a cut. Where a graph has none (pre-LayerNorm models: the residual stream bypasses them),
:func:`segments` returns None and calibration runs the whole graph as before. Same kernels, same inputs: the
statistics are the same numbers either way.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Segment", "segments", "segment_model"]


@dataclass(frozen=True)
class Segment:
    inputs: tuple[str, ...]  # what it is fed: the previous cut (or the graph's inputs) and the mask if it reads it
    cut: str  # the tensor it ends at (the next segment's input), or "" for the last one
    tensors: tuple[str, ...]  # the calibration tensors it produces
    nodes: tuple[int, ...]  # indices into the graph's nodes, in graph order


def _closure(graph, starts: list[str], stop: set[str], producer: dict[str, int]) -> tuple[set[int], set[str]] | None:
    """The nodes ``starts`` depend on, traced back until ``stop`` or constants; and the graph inputs reached. None if
    a tensor is reached that is neither (another activation: ``stop`` is not a cut)."""
    consts = {i.name for i in graph.initializer}
    graph_inputs = {i.name for i in graph.input}
    nodes: set[int] = set()
    reached: set[str] = set()
    todo = list(starts)
    seen: set[str] = set()
    while todo:
        t = todo.pop()
        if t in seen or t == "" or t in consts:
            continue
        seen.add(t)
        if t in stop:
            reached.add(t)
            continue
        if t in graph_inputs:
            reached.add(t)
            continue
        if t not in producer:
            return None
        i = producer[t]
        if i not in nodes:
            nodes.add(i)
            todo.extend(graph.node[i].input)
    return nodes, reached


def segments(graph, tensors: list[str], *, mask: str = "attention_mask") -> list[Segment] | None:
    """``graph`` cut at every LayerNormalization output, each calibration tensor (a MatMul input in ``tensors``)
    assigned to the segment that computes it; None where the cuts are not cuts or a tensor has no segment."""
    producer = {o: i for i, n in enumerate(graph.node) for o in n.output}
    graph_inputs = [i.name for i in graph.input]
    outputs = [o.name for o in graph.output]
    cuts = [n.output[0] for n in graph.node if n.op_type == "LayerNormalization" and n.output[0] not in outputs]
    if not cuts:
        return None
    wanted = set(tensors)
    out: list[Segment] = []
    before: list[str] = graph_inputs
    for cut in [*cuts, ""]:
        ends = [cut] if cut else outputs
        traced = _closure(graph, ends, set(before) | {mask}, producer)
        if traced is None:
            return None
        nodes, reached = traced
        if before is not graph_inputs and (reached - {mask}) != set(before):
            return None  # the segment does not start at the previous cut
        mine = sorted(t for t in wanted if producer.get(t) in nodes)
        # the mask's own small subgraph is traced by every segment that reads it: each computes it again
        out.append(Segment(tuple(sorted(reached)), cut, tuple(mine), tuple(sorted(nodes))))
        wanted -= set(mine)
        before = [cut]
    if wanted:
        return None
    return out


def segment_model(model, seg: Segment):
    """A model of ``seg``'s nodes alone (``model`` loaded without its external data: the segment's initializers keep
    their references to the weight file, so a session on it reads only those)."""
    from onnx import TensorProto, helper

    g = model.graph
    nodes = [g.node[i] for i in seg.nodes]
    used = {t for n in nodes for t in n.input}
    inputs = {i.name: i for i in g.input}
    feeds = [
        inputs[name] if name in inputs else helper.make_tensor_value_info(name, TensorProto.FLOAT, None)
        for name in seg.inputs
    ]
    ends = [seg.cut] if seg.cut else [o.name for o in g.output]
    outs = [helper.make_tensor_value_info(t, TensorProto.FLOAT, None) for t in dict.fromkeys([*ends, *seg.tensors])]
    sub = helper.make_graph(nodes, "segment", feeds, outs, [i for i in g.initializer if i.name in used])
    return helper.make_model(sub, opset_imports=list(model.opset_import), ir_version=model.ir_version)
