"""The ``int4`` variant: weight-only 4-bit MatMuls and int8 embeddings, the smallest file the exporter writes.

Every constant-weight MatMul of the unfused graph becomes onnxruntime's ``MatMulNBits`` (com.microsoft): the
weight ``W (K, N)`` in blocks of ``block`` values along K, each block of each output column with its own scale
and zero point (asymmetric: 4-bit codes 0..15, ``w ≈ (code - zero) * scale``). Activations stay float;
``accuracy_level`` 4 lets onnxruntime quantise them to int8 per block inside the kernel and multiply with
VNNI/AMX, 0 keeps them fp32. The embedding tables go int8 (:mod:`.embedding_int8`).

Rounding: with ``X^T X`` of each MatMul's calibration inputs, GPTQ (error feedback, a block's scale and zero
point fixed from the weights as they stand when the rounding reaches it); without it, round to nearest.

``MatMulNBits`` runs in onnxruntime's CPU provider (x86 and aarch64 kernels) and in onnxruntime-web's WASM
build; OpenVINO does not read this file (its own int4 would be another variant).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .rowwise import Calibration, gptq_feedback, gptq_setup, weight_matmuls

__all__ = [
    "Int4Settings",
    "INT4_SETTINGS",
    "Blocks",
    "quantize_blocks",
    "pack_blocks",
    "plan_int4",
    "write_int4",
    "int4_recipe",
]

BITS = (4, 8)  # what MatMulNBits stores: 4 (two codes a byte), or 8 for the MatMuls kept finer


@dataclass(frozen=True)
class Int4Settings:
    block: int  # weight values along K per scale and zero point (a power of two, >= 16)
    accuracy_level: int  # MatMulNBits: 0 fp32 activations, 4 int8 activations per block (VNNI/AMX kernels)
    gptq: bool  # error-feedback rounding on the calibration inputs' X^T X, else round to nearest

    def __post_init__(self) -> None:
        if self.block < 16 or self.block & (self.block - 1):
            raise ValueError(f"int4 block size {self.block} is not a power of two >= 16; use 32, 64 or 128")
        if self.accuracy_level not in (0, 1, 2, 3, 4):
            raise ValueError(f"MatMulNBits accuracy_level {self.accuracy_level} is not one of 0..4")


INT4_SETTINGS = Int4Settings(block=32, accuracy_level=4, gptq=True)


def int4_recipe(s: Int4Settings, *, calibrated_on: int) -> str:
    rounding = f"GPTQ error feedback on {calibrated_on} RU/EN STS train sentences" if s.gptq else "rounded to nearest"
    acts = "int8 per block inside the kernel" if s.accuracy_level == 4 else "fp32"
    return (
        f"weight-only int4: MatMul weights asymmetric 4-bit in blocks of {s.block} along K (MatMulNBits, a scale "
        f"and zero point per block and output column, {rounding}), activations {acts}; fp32 attention scores and "
        f"elsewhere"
    )


@dataclass(frozen=True)
class Blocks:
    """One MatMul's weight in codes of ``bits``: ``w[k, n] ≈ (codes[k, n] - zeros[k // block, n]) *
    scales[k // block, n]``."""

    codes: np.ndarray  # (K, N) uint8, 0..2^bits - 1
    scales: np.ndarray  # (K / block, N) float32
    zeros: np.ndarray  # (K / block, N) uint8
    block: int
    bits: int = 4

    def dequantize(self) -> np.ndarray:
        s = np.repeat(self.scales, self.block, axis=0)[: self.codes.shape[0]]
        z = np.repeat(self.zeros, self.block, axis=0)[: self.codes.shape[0]].astype(np.float32)
        return (self.codes.astype(np.float32) - z) * s


SHRINK = np.linspace(1.0, 0.6, 9)  # range fractions tried per block column: an outlier clipped can cost less


def _block_params(w: np.ndarray, top: int) -> tuple[np.ndarray, np.ndarray]:
    """Scale and zero point per column of a block ``w`` (rows, N): of the block's range shrunk by each of
    :data:`SHRINK`, the one whose codes reproduce the block with least squared error; zero kept exact."""
    lo0, hi0 = np.minimum(w.min(axis=0), 0.0), np.maximum(w.max(axis=0), 0.0)
    best = np.full(w.shape[1], np.inf)
    scale, zero = np.ones(w.shape[1]), np.zeros(w.shape[1])
    for f in SHRINK:
        lo, hi = lo0 * f, hi0 * f
        s = np.where(hi > lo, (hi - lo) / top, 1.0)
        z = np.clip(np.rint(-lo / s), 0, top)
        err = (((np.clip(np.rint(w / s) + z, 0, top) - z) * s - w) ** 2).sum(axis=0)
        better = err < best
        best, scale, zero = np.where(better, err, best), np.where(better, s, scale), np.where(better, z, zero)
    return scale, zero


def quantize_blocks(
    w: np.ndarray,
    gram: np.ndarray | None = None,
    *,
    block: int = 32,
    bits: int = 4,
    damp: float = 0.01,
    lazy: int = 128,
) -> Blocks:
    """Codes of ``bits`` for ``w`` (K, N) in blocks of ``block`` rows; with ``gram`` (X^T X of the inputs, K×K)
    rounded with GPTQ error feedback (Frantar et al. 2022, lazy batches of ``lazy`` rows), else to nearest."""
    if bits not in BITS:
        raise ValueError(f"MatMulNBits weights of {bits} bits are not written here; use one of {BITS}")
    top = (1 << bits) - 1
    k, n = w.shape
    nb = -(-k // block)
    codes = np.empty((k, n), dtype=np.uint8)
    scales = np.empty((nb, n), dtype=np.float32)
    zeros = np.empty((nb, n), dtype=np.uint8)
    if gram is None:
        for b in range(nb):
            rows = w[b * block : (b + 1) * block].astype(np.float32)
            s, z = _block_params(rows, top)
            codes[b * block : (b + 1) * block] = np.clip(np.rint(rows / s) + z, 0, top)
            scales[b], zeros[b] = s, z
        return Blocks(codes, scales, zeros, block, bits)
    lazy = max(block, lazy - lazy % block)
    u, wk = gptq_setup(w, gram, damp)  # upper factor of H^-1; unseen inputs' rows zeroed
    s = z = np.empty(0)

    def dequantize_row(r: int, rows: np.ndarray) -> np.ndarray:
        nonlocal s, z
        if r % block == 0:  # a new block: its parameters from the weights as the feedback left them
            s, z = _block_params(rows[:block], top)
            scales[r // block], zeros[r // block] = s, z
        qr = np.clip(np.rint(rows[0] / s) + z, 0, top)
        codes[r] = qr
        return (qr - z) * s

    gptq_feedback(wk, u, dequantize_row, lazy=lazy, inner=block)  # a block's scale sees its rows all fed back
    return Blocks(codes, scales, zeros, block, bits)


def _pack(codes: np.ndarray, bits: int) -> np.ndarray:
    """Codes along the last axis, 8 / ``bits`` to a byte, lowest bits first (the last axis divides evenly)."""
    if bits == 8:
        return np.ascontiguousarray(codes, dtype=np.uint8)
    c = codes.reshape(*codes.shape[:-1], -1, 2)
    return (c[..., 0] | (c[..., 1] << 4)).astype(np.uint8)


def pack_blocks(q: Blocks) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MatMulNBits' inputs: B (N, K/block, block * bits / 8) uint8, codes low bits first along K; scales
    (N, K/block); zero points (N, ceil(K/block * bits / 8)) packed the same way."""
    k, n = q.codes.shape
    nb = q.scales.shape[0]
    codes = np.zeros((nb * q.block, n), dtype=np.uint8)
    codes[:k] = q.codes  # a last partial block padded with code 0 (its inputs are absent)
    packed = _pack(codes.T.reshape(n, nb, q.block), q.bits)
    zeros = q.zeros.T  # (N, nb)
    if q.bits == 4 and nb % 2:
        zeros = np.concatenate([zeros, np.full((n, 1), 8, np.uint8)], axis=1)
    return packed, np.ascontiguousarray(q.scales.T), _pack(zeros, q.bits)


def plan_int4(
    raw: Path, cal: Calibration | None, s: Int4Settings, *, inputs: Collection[str] | None = None
) -> dict[str, Blocks]:
    """:func:`quantize_blocks` for every constant-weight MatMul of ``raw``, by node name (GPTQ when ``s`` asks for
    it and ``cal`` has the inputs' X^T X); ``inputs``: only those that read one of these tensors."""
    import onnx

    from .weights_io import read_initializer

    graph = onnx.load(str(raw), load_external_data=False).graph  # the weights are read one at a time
    inits = {i.name: i for i in graph.initializer}
    grams = cal.grams if cal is not None and s.gptq else {}
    return {
        n.name: quantize_blocks(read_initializer(raw, inits[n.input[1]]), grams.get(n.input[0]), block=s.block)
        for n in weight_matmuls(graph)
        if inputs is None or n.input[0] in inputs
    }


def write_int4(raw: Path, blocks: dict[str, Blocks], s: Int4Settings):
    """The unfused fp32 graph ``raw`` with each MatMul named in ``blocks`` as ``MatMulNBits``; returns the model
    (in memory: the caller rewrites and saves it)."""
    import onnx
    from onnx import helper, numpy_helper

    from .weights_io import load_graph

    lean = onnx.load(str(raw), load_external_data=False).graph
    model = load_graph(raw, without={n.input[1] for n in weight_matmuls(lean) if n.name in blocks})
    g = model.graph
    inits = {i.name: i for i in g.initializer}
    replaced: dict[str, object] = {}
    for node in weight_matmuls(g):
        if node.name not in blocks:
            continue
        q = blocks[node.name]
        k, n = q.codes.shape
        packed, scales, zp = pack_blocks(q)
        base = node.input[1]
        g.initializer.extend(
            [
                numpy_helper.from_array(packed, base + "_q4"),
                numpy_helper.from_array(scales, base + "_q4_scales"),
                numpy_helper.from_array(zp, base + "_q4_zeros"),
            ]
        )
        replaced[node.name] = helper.make_node(
            "MatMulNBits",
            [node.input[0], base + "_q4", base + "_q4_scales", base + "_q4_zeros"],
            list(node.output),
            name=node.name + "_Q4",
            domain="com.microsoft",
            K=k,
            N=n,
            bits=q.bits,
            block_size=q.block,
            accuracy_level=s.accuracy_level,
        )
    nodes = [replaced.get(n.name, n) for n in g.node]
    del g.node[:]
    g.node.extend(nodes)
    read = {i for n in g.node for i in n.input}
    keep = [i for i in g.initializer if i.name in read or i.name not in inits]
    del g.initializer[:]
    g.initializer.extend(keep)
    if not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    return model
