"""Offline transformer fusions (Attention, SkipLayerNormalization, BiasGelu) with onnxruntime's optimizer."""

from __future__ import annotations

from pathlib import Path

__all__ = ["fuse", "FUSED_OPS"]

FUSED_OPS = ("Attention", "SkipLayerNormalization", "BiasGelu", "Gelu", "FastGelu", "LayerNormalization", "EmbedLayerNormalization")


def fuse(raw: Path, *, num_heads: int, hidden_size: int):
    """Returns (onnxruntime OnnxModel, {fused op: count}). ``opt_level=0``: fusions only, no
    CPU-specific rewrites baked in, so the file stays portable across execution providers."""
    import logging

    from onnxruntime.transformers.optimizer import optimize_model

    logging.getLogger("onnxruntime.transformers").setLevel(logging.ERROR)
    model = optimize_model(str(raw), model_type="bert", num_heads=num_heads, hidden_size=hidden_size, opt_level=0)
    stats = model.get_fused_operator_statistics()
    counts = {k: int(stats.get(k, 0)) for k in FUSED_OPS if stats.get(k, 0)}
    return model, counts
