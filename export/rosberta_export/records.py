"""The manifest an export writes: the model's facts from its source, the tools that built it, and one record per
variant (files and checksums, recipe in words, fused ops, graph rewrites, engine)."""

from __future__ import annotations

import platform
from datetime import datetime, timezone
from pathlib import Path

from rosberta_onnx.hardware import cpu_isa
from rosberta_onnx.manifest import FORMAT_VERSION, GATED_VARIANTS, Manifest, ModelFacts, VariantRecord, sha256_file

from .convert import OPSET
from .int4 import INT4_SETTINGS, int4_recipe
from .openvino_int8 import openvino_recipe
from .options import ExportOptions
from .quantize import INT8_RECIPES, ROWWISE_SETTINGS, describe_rowwise
from .rewrites import describe
from .source import Source
from .unsigned_int8 import UNSIGNED_RECIPE

__all__ = ["FILES", "RECIPES", "model_facts", "provisional_manifest", "variant_records"]

FILES = {
    "fp32": "model.onnx",
    "fp16": "model_fp16.onnx",
    "int8": "model_int8.onnx",
    "int8-avx2": "model_int8_avx2.onnx",
    "int8-openvino": "model_int8_openvino.onnx",
    "int4": "model_int4.onnx",
}
RECIPES = {
    "fp32": "fp32, onnxruntime transformer fusions (Attention, SkipLayerNormalization, BiasGelu), weights in model.onnx.data",
    "fp16": "fp16 weights and compute from the fused fp32 graph, fp32 inputs/outputs; a GPU variant",
}


def _tool_versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version(), "rosberta-onnx": md.version("rosberta-onnx")}
    for name in ("torch", "transformers", "onnx", "onnxruntime", "tokenizers", "numpy"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return out


def model_facts(src: Source) -> ModelFacts:
    c = src.config
    return ModelFacts(
        architecture=src.model_type,
        hidden_size=int(c["hidden_size"]),
        num_layers=int(c["num_hidden_layers"]),
        num_heads=int(c["num_attention_heads"]),
        intermediate_size=int(c["intermediate_size"]),
        vocab_size=int(c["vocab_size"]),
        pad_token_id=int(c.get("pad_token_id") or 0),
        max_position_embeddings=int(c["max_position_embeddings"]),
        max_length=src.max_length,
        pooling=src.pooling,
        normalize=src.normalize,
        prompts=src.prompts,
    )


def provisional_manifest(src: Source, facts: ModelFacts, tokenizer: Path) -> Manifest:
    """Everything but the variants: the contract stamped into each ONNX file's metadata."""
    return Manifest(
        format_version=FORMAT_VERSION,
        source={
            "model": src.model_id,
            "revision": src.revision,
            "kind": src.kind,
            "stand_in": bool(src.stand_in),
            "note": (src.stand_in or {}).get("note", ""),
            "max_length_origin": src.max_length_origin,
        },
        model=facts,
        tokenizer_file=tokenizer.name,
        tokenizer_sha256=sha256_file(tokenizer),
        opset=OPSET,
        tools=_tool_versions(),
        variants={},
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )


def variant_records(
    written: dict[str, list[Path]],
    opts: ExportOptions,
    *,
    fused_counts: dict[str, int],
    rewrites: dict[str, dict[str, int]],
    ov_options: dict,
) -> dict[str, VariantRecord]:
    """A record per written variant (parity and gate figures come later, from :mod:`.measure`)."""
    rowwise = opts.int8_recipe in ROWWISE_SETTINGS
    recipes = {**RECIPES, "int8": describe_rowwise(opts.settings) if rowwise else INT8_RECIPES[opts.int8_recipe]}
    recipes["int8-avx2"] = recipes["int8"] + "; " + UNSIGNED_RECIPE
    recipes["int4"] = int4_recipe(INT4_SETTINGS, calibrated_on=opts.settings.sentences)
    if ov_options:
        recipes["int8-openvino"] = openvino_recipe(ov_options, calibrated_on=opts.settings.sentences)
    records = {}
    for v, paths in written.items():
        openvino = v == "int8-openvino"
        records[v] = VariantRecord(
            name=v,
            file=FILES[v],
            files={p.name: sha256_file(p) for p in paths},
            size_bytes=sum(p.stat().st_size for p in paths),
            recipe=recipes[v] + describe(rewrites.get(v, {})),
            fused_ops=fused_counts if v not in GATED_VARIANTS else {},
            isa=cpu_isa() if v in GATED_VARIANTS else "",
            engine="openvino" if openvino else "onnxruntime",
            engine_options=ov_options if openvino else {},
            graph_rewrites=rewrites.get(v, {}),
        )
    return records
