"""What this CPU's instruction set means for the tests' expectations: the suite runs on whatever CPU CI draws."""

from rosberta_onnx.hardware import cpu_isa, int8_native


def int8_here() -> str:
    """The onnxruntime int8 variant ``auto`` weighs on this CPU: ``int8`` with VNNI/AMX (or on ARM), its unsigned
    twin ``int8-avx2`` on x86 without VNNI, where U8xS8 products saturate."""
    return "int8" if int8_native(cpu_isa()) else "int8-avx2"
