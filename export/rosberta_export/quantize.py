"""fp32 -> dynamic int8 for CPUs: int8 weights per output channel, activations quantised at run time."""

from __future__ import annotations

from pathlib import Path

__all__ = ["quantize_int8", "INT8_RECIPE", "cpu_isa"]

INT8_RECIPE = "dynamic int8: MatMul weights S8 per output channel, U8 activations per tensor (U8S8), fp32 elsewhere"


def cpu_isa() -> str:
    """The int8-relevant instruction set of this CPU: amx > avx512_vnni > avx_vnni > avx2 > other."""
    try:
        flags = set()
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        return "unknown"
    for name, flag in (("amx", "amx_int8"), ("avx512_vnni", "avx512_vnni"), ("avx_vnni", "avx_vnni"), ("avx2", "avx2")):
        if flag in flags:
            return name
    return "other"


def quantize_int8(raw: Path, out: Path) -> Path:
    """Quantise the *unfused* fp32 graph; onnxruntime fuses the int8 graph itself when it loads it."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        model_input=str(raw), model_output=str(out), per_channel=True, reduce_range=False,
        weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"],
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT, "MatMulConstBOnly": True},
    )
    return out
