"""Disk space an export needs, checked before its long steps: an export that fills the disk fails minutes in (and
takes the space other programs on the machine needed); one refused up front costs seconds and says what to do.

Everything an export writes goes into a partial folder beside its output (see :func:`pipeline.export`), so the
space that counts is the free space of the output's parent folder. Every file it writes is a copy of the model's
weights in some precision, so the need is a multiple of the raw fp32 graph's size, which is known exactly once
that first file is written.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from rosberta_onnx import RosbertaError
from rosberta_onnx.manifest import GATED_VARIANTS

# small files (tokenizer, manifest, OpenVINO's graph description) and the file system's own rounding
MARGIN_BYTES = 64 * 1024**2


class NotEnoughSpace(RosbertaError, OSError):
    """The output's file system cannot hold the export; the message names the figures and the fixes."""


def quantized_fractions(
    raw_bytes: int, *, vocab_size: int, max_positions: int, hidden_size: int, int4_block: int = 32
) -> dict[str, float]:
    """Size of each quantised file relative to the fp32 one. The embedding tables are int8 with a float scale per
    row; the other weights (nearly all MatMul weights) take one byte each in int8 (plus a float scale per output
    column), and half a byte plus a float scale and a 4-bit zero point per ``int4_block`` values in int4."""
    rows = vocab_size + max_positions
    emb = min(raw_bytes, rows * hidden_size * 4)
    emb_q, rest = emb / 4 + rows * 4, raw_bytes - emb
    int8 = (emb_q + rest / 4) / raw_bytes
    return {
        "int8": int8,
        "int8-avx2": int8,
        "int8-openvino": int8,
        "int4": (emb_q + rest / 4 * (0.5 + 4.5 / int4_block)) / raw_bytes,
    }


def peak_bytes(raw_bytes: int, variants: tuple[str, ...], *, fractions: dict[str, float]) -> int:
    """Bytes the export holds beside the raw fp32 graph (``raw_bytes``, written first) at its fullest.

    In export order: the fused fp32 graph (kept as ``fp32``, or as fp16's source) and the fp16 one; then the
    quantised files (each built in the work folder or in memory, the file read back and deleted there, then written
    stamped into the artifact). The calibration probe before them is the raw graph without its weights (they stay
    in the raw graph's ``.data`` file), a few MB within :data:`MARGIN_BYTES`. ``fractions``: each quantised file's
    size relative to the fp32 one (:func:`quantized_fractions`).
    Measured peaks (the folder polled every 50 ms during ``export``, fp32, fp16 and both int8 variants, their
    embedding tables still fp32): full-size stand-in 4.57 GB against 4.62 GB from here (4.96 GB while the probe was
    a full copy of the raw graph, 5.59 GB before int8 builds were deleted from the work folder once read back);
    all-MiniLM-L6-v2 0.34 GB against 0.41 GB before the probe change (the difference is :data:`MARGIN_BYTES`).
    """
    fused = 1.0 if ("fp32" in variants or "fp16" in variants) else 0.0
    half = 0.5 if "fp16" in variants else 0.0
    quantised = sum(fractions[v] for v in GATED_VARIANTS if v in variants)
    return int(raw_bytes * (fused + half + quantised)) + MARGIN_BYTES


def check_space(folder: Path, need: int, what: str) -> None:
    """Raise :class:`NotEnoughSpace` if ``folder``'s file system has less than ``need`` bytes free."""
    free = shutil.disk_usage(folder).free
    if free < need:
        gb = lambda n: f"{n / 1024**3:.1f} GB"
        raise NotEnoughSpace(
            f"not enough disk space in {str(folder)!r} for {what}: it needs about {gb(need)} more at its peak and "
            f"{gb(free)} are free. Free space there, export to a folder on a disk with room (-o), or build fewer "
            f"variants (--variants); nothing was left behind"
        )
