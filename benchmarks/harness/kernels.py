"""The int8 GEMM kernels the GEMM-only ceiling study times, by the row names its results use, and which kernel
each int8 system of ours runs: the speed goals read the ceiling of a system's own kernel."""

from __future__ import annotations

from pathlib import Path

__all__ = ["ORT_INT8", "OV_DYNAMIC", "OV_STATIC", "OV_STREAMS", "KERNEL_OF", "CEILING_RESULTS"]

ORT_INT8 = "onnxruntime int8 (MLAS U8S8, per-tensor dynamic)"
OV_DYNAMIC = "OpenVINO int8, dynamic per 256 (int8-openvino)"
OV_STATIC = "OpenVINO int8, static (NNCF)"
OV_STREAMS = "OpenVINO int8, dynamic per 256, batch halves on 2 streams (int8-openvino as shipped)"
KERNEL_OF = {
    "rosberta-int8": ORT_INT8,
    "rosberta-int8-openvino": OV_STREAMS,
    "rosberta-int8-openvino-1stream": OV_DYNAMIC,
}
# where `python -m benchmarks.studies.ceiling` writes by default (run from the repository root)
CEILING_RESULTS = Path(__file__).resolve().parents[1] / "results" / "ceiling" / "ceiling.json"
