"""Offline transformer fusions (Attention, SkipLayerNormalization, BiasGelu) with onnxruntime's optimizer."""

from __future__ import annotations

from pathlib import Path

__all__ = ["fuse", "write_fused", "FUSED_OPS"]

FUSED_OPS = (
    "Attention",
    "SkipLayerNormalization",
    "BiasGelu",
    "Gelu",
    "FastGelu",
    "LayerNormalization",
    "EmbedLayerNormalization",
)


def fuse(raw: Path, *, num_heads: int, hidden_size: int):
    """Returns (onnxruntime OnnxModel, {fused op: count}). ``opt_level=0``: fusions only, no
    CPU-specific rewrites baked in, so the file stays portable across execution providers.

    Without the optimizer's symbolic shape inference: it copies the whole model (weights included) to learn shapes,
    which took the full-size fusion from 1.8 GB to 8.5 GB peak, and the fusions found are the same (the tiny
    stand-in's graph is identical; MiniLM's keeps one int64->int64 Cast, a no-op); parity checks every export."""
    import logging

    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    logging.getLogger("onnxruntime.transformers").setLevel(logging.ERROR)
    options = FusionOptions("bert")
    options.enable_shape_inference = False
    model = optimize_model(
        str(raw),
        model_type="bert",
        num_heads=num_heads,
        hidden_size=hidden_size,
        opt_level=0,
        optimization_options=options,
    )
    stats = model.get_fused_operator_statistics()
    counts = {k: int(stats.get(k, 0)) for k in FUSED_OPS if stats.get(k, 0)}
    return model, counts


def write_fused(
    raw: Path, out: Path, *, num_heads: int, hidden_size: int, pooling: str, props: dict[str, str]
) -> tuple[list[Path], dict[str, int], dict[str, int]]:
    """Fuse ``raw``, apply the graph rewrites for onnxruntime (:mod:`.rewrites`: with CLS pooling, the last layer
    after attention on the first token only) and write it to ``out`` with its weights in ``out.data``; returns
    (files, fused op counts, rewrites applied).

    Run as a child process by the pipeline (``python -m rosberta_export.fuse``): the optimizer's transient heap
    (~1.8 GB for the full-size model's 1.4 GB graph) goes back to the OS when it ends."""
    from .convert import save_onnx, stamp
    from .rewrites import rewrite_for_onnxruntime

    fused, counts = fuse(raw, num_heads=num_heads, hidden_size=hidden_size)
    rewrites = rewrite_for_onnxruntime(fused.model.graph, pooling=pooling)
    stamp(fused.model, props)
    return save_onnx(fused.model, out, external_data=True), counts, rewrites


if __name__ == "__main__":  # the child: a JSON job on stdin, a JSON result as the last line of stdout
    import json
    import sys

    job = json.load(sys.stdin)
    files, fused_counts, rewrites = write_fused(
        Path(job["raw"]),
        Path(job["out"]),
        num_heads=job["num_heads"],
        hidden_size=job["hidden_size"],
        pooling=job["pooling"],
        props=job["props"],
    )
    from .stages import high_water

    answer = {
        "files": [str(f) for f in files],
        "counts": fused_counts,
        "rewrites": rewrites,
        "peak_bytes": high_water(),
    }
    print(json.dumps(answer))
