"""fp32 -> fp16 for GPUs: weights and compute in fp16, inputs and outputs kept as in fp32."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import numpy as np

__all__ = ["to_fp16", "write_fp16", "FP16_OP_BLOCK_LIST"]

# Ops left in fp32. onnxruntime's converter keeps its default list (e.g. Range, shape arithmetic);
# nothing more was needed for parity on the stand-ins and MiniLM (see the manifest's fp16 figures).
FP16_OP_BLOCK_LIST: tuple[str, ...] = ()


# Initializers with more elements than this stay unread while the graph's types are inferred: the weight matrices
# and embedding tables, whose values shape inference never needs.
_UNREAD_ABOVE = 65536


def large_weights(fused: Path) -> set[str]:
    """The initializers of the graph at ``fused`` with more than :data:`_UNREAD_ABOVE` elements."""
    import onnx

    graph = onnx.load(str(fused), load_external_data=False).graph
    return {i.name for i in graph.initializer if int(np.prod(i.dims, dtype=np.int64)) > _UNREAD_ABOVE}


def tensor_types(lean) -> list:
    """The element type of every tensor of the fused graph ``lean`` (shapes dropped), from onnxruntime's symbolic
    shape inference, which knows its fused ops (ONNX's own does not). ``lean``: the graph with its large weights left
    unread (:func:`large_weights`): on the full model whole it held ~4 GB beside the 1.4 GB graph, only to learn
    types."""
    from onnx import TensorProto, ValueInfoProto
    from onnxruntime.transformers.shape_infer_helper import SymbolicShapeInferenceHelper

    inferred = SymbolicShapeInferenceHelper(lean).infer_shapes(lean, auto_merge=True, guess_output_rank=False)
    known = {vi.name for vi in lean.graph.value_info}
    types = []
    for vi in inferred.graph.value_info:
        if vi.name and vi.name not in known and vi.type.tensor_type.elem_type != TensorProto.UNDEFINED:
            t = ValueInfoProto()
            t.CopyFrom(vi)
            t.type.tensor_type.ClearField("shape")
            types.append(t)
    return types


def to_fp16(model, types: list | None = None):
    """``model``: the fused fp32 ``onnx.ModelProto``, converted in place (pass a copy to keep the original).
    ``types``: its tensors' element types (:func:`tensor_types`); None infers them on ``model`` itself (all its
    weights in memory twice over). Returns the fp16 ``onnx.ModelProto``."""
    from onnxruntime.transformers.float16 import convert_float_to_float16
    from onnxruntime.transformers.onnx_model import OnnxModel

    kwargs: dict[str, object] = {"keep_io_types": True}
    if FP16_OP_BLOCK_LIST:
        kwargs["op_block_list"] = list(FP16_OP_BLOCK_LIST)
    if types is None:
        m = OnnxModel(model)
        m.convert_float_to_float16(**kwargs)
        return m.model
    # what OnnxModel.convert_float_to_float16 does after its own symbolic inference, with the types given
    model.graph.value_info.extend(types)
    m = OnnxModel(convert_float_to_float16(model, disable_shape_infer=True, **kwargs))
    m.remove_cascaded_cast_nodes()
    m.remove_useless_cast_nodes()
    return m.model


@contextmanager
def _shapes_from_dims():
    """onnxruntime's converter reads each converted initializer whole only to learn its shape, which its ``dims``
    already say; with the large weights still on disk (unread) that read would fail, so it reads ``dims``."""
    from onnx import helper
    from onnxruntime.transformers import float16

    original = float16.make_value_info_from_tensor
    float16.make_value_info_from_tensor = lambda t: helper.make_tensor_value_info(t.name, t.data_type, list(t.dims))
    try:
        yield
    finally:
        float16.make_value_info_from_tensor = original


def write_fp16(fused: Path, out: Path, *, props: dict[str, str]) -> list[Path]:
    """Read the fused fp32 file ``fused``, write its fp16 conversion to ``out``. Run as a child process by the
    pipeline (``python -m rosberta_export.fp16``).

    The graph is converted with its large weights still on disk; the converter only retypes them. Each is then read
    from the fp32 data file and rounded as the converter rounds (or kept fp32 where it kept it fp32), one at a time.
    Converting the loaded model instead kept the fp32 weights and their fp16 copies both in protobuf's arena
    (4.6 GB peak at full size; 2.5 GB this way), and gives the same file (tested)."""
    from onnx import TensorProto
    from onnx.external_data_helper import uses_external_data
    from onnxruntime.transformers.float16 import convert_np_to_float16

    from .convert import save_onnx, stamp
    from .weights_io import load_graph, read_initializer

    big = large_weights(fused)
    lean = load_graph(fused, without=big)
    on_disk = {}
    for t in lean.graph.initializer:
        if uses_external_data(t):  # the large weights load_graph left unread
            ref = TensorProto()
            ref.CopyFrom(t)  # dims, type and where its data lies: no values
            on_disk[t.name] = ref
    types = tensor_types(lean)
    with _shapes_from_dims():
        half = to_fp16(lean, types)
    for t in half.graph.initializer:
        if t.name not in on_disk:
            continue
        values = read_initializer(fused, on_disk[t.name])
        if t.data_type == TensorProto.FLOAT16 and values.dtype == np.float32:
            values = convert_np_to_float16(values)
        t.raw_data = values.tobytes()
        t.data_location = TensorProto.DEFAULT
        del t.external_data[:]
    stamp(half, props)
    return save_onnx(half, out, external_data=False)


if __name__ == "__main__":  # the child: a JSON job on stdin, a JSON result as the last line of stdout
    import json
    import sys

    job = json.load(sys.stdin)
    from .stages import high_water

    files = write_fp16(Path(job["fused"]), Path(job["out"]), props=job["props"])
    print(json.dumps({"files": [str(f) for f in files], "peak_bytes": high_water()}))
