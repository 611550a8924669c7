"""fp32 -> fp16 for GPUs: weights and compute in fp16, inputs and outputs kept as in fp32."""

from __future__ import annotations

from pathlib import Path

__all__ = ["to_fp16", "write_fp16", "FP16_OP_BLOCK_LIST"]

# Ops left in fp32. onnxruntime's converter keeps its default list (e.g. Range, shape arithmetic);
# nothing more was needed for parity on the stand-ins and MiniLM (see the manifest's fp16 figures).
FP16_OP_BLOCK_LIST: tuple[str, ...] = ()


def to_fp16(model):
    """``model``: the fused fp32 ``onnx.ModelProto``, converted in place (pass a copy to keep the original).
    Returns the fp16 ``onnx.ModelProto``."""
    from onnxruntime.transformers.onnx_model import OnnxModel

    m = OnnxModel(model)
    kwargs: dict[str, object] = {"keep_io_types": True}
    if FP16_OP_BLOCK_LIST:
        kwargs["op_block_list"] = list(FP16_OP_BLOCK_LIST)
    m.convert_float_to_float16(**kwargs)
    return m.model


def write_fp16(fused: Path, out: Path, *, props: dict[str, str]) -> list[Path]:
    """Read the fused fp32 file ``fused`` (and its weights), write its fp16 conversion to ``out``. Run as a child
    process by the pipeline (``python -m rosberta_export.fp16``; 5.9 GB peak on the full-size model)."""
    import onnx

    from .convert import save_onnx, stamp

    half = to_fp16(onnx.load(str(fused)))
    stamp(half, props)
    return save_onnx(half, out, external_data=False)


if __name__ == "__main__":  # the child: a JSON job on stdin, a JSON result as the last line of stdout
    import json
    import sys

    job = json.load(sys.stdin)
    print(json.dumps({"files": [str(f) for f in write_fp16(Path(job["fused"]), Path(job["out"]), props=job["props"])]}))
