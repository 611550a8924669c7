"""Every system the peers benchmark can run, by name: torch and the peers (:mod:`.peers`), the native CPU/edge peers
CTranslate2 and llama.cpp (:mod:`.native_peers`), this project's Python runtime (:mod:`.ours`) and its JavaScript
runtime (:mod:`.js_runtime`)."""

from __future__ import annotations

from ..harness.base import Context, System
from . import js_runtime, native_peers, ours, peers

__all__ = ["SYSTEM_NAMES", "ON_REQUEST", "make_system"]

# Run order inside every round; the first is the baseline every ratio is against.
SYSTEM_NAMES = (
    "torch-fp32",
    "torch-bf16",
    "st-torch",
    "st-onnx",
    "openvino-fp32",
    "openvino-bf16",
    "openvino-int8",
    "ort-plain",
    "rosberta-fp32",
    "rosberta-int8",
    "rosberta-int8-openvino",
    "rosberta-int4",
    "rosberta-fp16",
)
# Run only when named in --systems: ablations of one of ours, the JS runtime (Node processes; js/ needs npm ci), and
# the native peers (the `peers` extra; each converts the checkpoint once into a cache).
ON_REQUEST = (
    "rosberta-auto",
    "rosberta-int8-avx2",
    "rosberta-int8-openvino-1stream",
    "node-fp32",
    "node-int8",
    "node-int4",
    "wasm-fp32",
    "wasm-int8",
    "wasm-int4",
    "ct2-int8",
    "llama-f16",
    "llama-q8_0",
    "llama-q4_k_m",
)

_CLASSES = {c.name: c for c in (*peers.SYSTEMS, *native_peers.SYSTEMS, *ours.SYSTEMS, *js_runtime.SYSTEMS)}


def make_system(name: str, ctx: Context) -> System:
    if name not in _CLASSES:
        raise ValueError(f"unknown system {name!r}; choose from {', '.join(SYSTEM_NAMES + ON_REQUEST)}")
    return _CLASSES[name](ctx)
