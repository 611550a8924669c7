"""fp32 -> fp16 for GPUs: weights and compute in fp16, inputs and outputs kept as in fp32."""

from __future__ import annotations

__all__ = ["to_fp16", "FP16_OP_BLOCK_LIST"]

# Ops left in fp32. onnxruntime's converter keeps its default list (e.g. Range, shape arithmetic);
# nothing more was needed for parity on the stand-ins and MiniLM (see the manifest's fp16 figures).
FP16_OP_BLOCK_LIST: tuple[str, ...] = ()


def to_fp16(fused_model):
    """``fused_model``: an onnxruntime ``OnnxModel`` (after fusion). Returns a new ``onnx.ModelProto``."""
    import copy

    from onnxruntime.transformers.onnx_model import OnnxModel

    m = OnnxModel(copy.deepcopy(fused_model.model))
    kwargs = {"keep_io_types": True}
    if FP16_OP_BLOCK_LIST:
        kwargs["op_block_list"] = list(FP16_OP_BLOCK_LIST)
    m.convert_float_to_float16(**kwargs)
    return m.model
