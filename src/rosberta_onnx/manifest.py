"""The artifact contract: ``manifest.json``, written by the exporter and read by the runtime.

This is the one schema both sides use, so the writer and the reader cannot drift apart. Every model
fact the runtime needs (dimension, pooling, max length, pad id, prompt table, file names) lives here
and nowhere else.

An artifact folder looks like::

    manifest.json          this schema
    tokenizer.json         the `tokenizers` file (padding/truncation are set by the runtime, not trusted)
    model.onnx + model.onnx.data     fp32
    model_fp16.onnx        fp16 (GPU variant)
    model_int8.onnx        dynamic int8 (CPU variant, onnxruntime)
    model_int8_avx2.onnx   the same int8 weights stored unsigned: exact on x86 CPUs without VNNI
    model_int8_openvino.onnx + .data   the same int8 weights for OpenVINO's CPU plugin (optional engine)
    model_int4.onnx + .data            4-bit MatMul weights (onnxruntime's MatMulNBits)
    reference.json + reference.npy     texts with their PyTorch fp32 vectors, for ``verify`` on any CPU
    config.json, tokenizer_config.json, special_tokens_map.json, modules.json, 1_Pooling/config.json,
    sentence_bert_config.json, config_sentence_transformers.json   for other tools (``interop``)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .atomic import write_json_atomic
from .errors import ArtifactError, ArtifactNotFoundError

__all__ = [
    "FORMAT_VERSION",
    "MANIFEST_NAME",
    "VARIANTS",
    "GATED_VARIANTS",
    "ENGINES",
    "POOLINGS",
    "ModelFacts",
    "VariantRecord",
    "Manifest",
    "sha256_file",
]

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
VARIANTS = ("fp32", "fp16", "int8", "int8-avx2", "int8-openvino", "int4")
# the quantised variants: each judged by the exporter's quality gate, and ``auto`` picks one only if it passed
GATED_VARIANTS = ("int8", "int8-avx2", "int8-openvino", "int4")
ENGINES = ("onnxruntime", "openvino")
POOLINGS = ("cls", "mean")
# Key prefix of the contract copied into each ONNX file's metadata_props.
METADATA_PREFIX = "rosberta_onnx."


@dataclass(frozen=True)
class ModelFacts:
    """Architecture facts of the encoder, read from its config at export time."""

    architecture: str  # "roberta" | "xlm-roberta" | "bert"
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    vocab_size: int
    pad_token_id: int
    max_position_embeddings: int
    # Usable tokens per text, specials included. For RoBERTa positions start at pad_id + 1, so
    # 514 position slots leave 514 - (1 + 1) = 512; feeding 514 tokens indexes past the table.
    max_length: int
    pooling: str  # "cls" | "mean"
    normalize: bool
    prompts: Mapping[str, str]
    input_names: tuple[str, ...] = ("input_ids", "attention_mask")
    output_name: str = "last_hidden_state"

    def __post_init__(self) -> None:
        if self.pooling not in POOLINGS:
            raise ArtifactError(f"pooling {self.pooling!r} is not supported; expected one of {POOLINGS}")
        if self.max_length < 2:
            raise ArtifactError(f"max_length {self.max_length} is too small to hold <s> and </s>")
        for name, prefix in self.prompts.items():
            if not isinstance(name, str) or not isinstance(prefix, str):
                raise ArtifactError(f"prompt table entry {name!r}: {prefix!r} is not a str -> str mapping")

    @property
    def dim(self) -> int:
        return self.hidden_size


@dataclass(frozen=True)
class VariantRecord:
    """One exported ONNX file and what was measured about it at export time."""

    name: str  # one of VARIANTS
    file: str
    files: Mapping[str, str]  # every file the variant needs -> sha256
    size_bytes: int
    recipe: str  # how it was made, in words
    parity: Mapping[str, Any] = field(default_factory=dict)
    gate: Mapping[str, Any] = field(default_factory=dict)  # {"passed": bool, "thresholds": ..., "figures": ...}
    fused_ops: Mapping[str, int] = field(default_factory=dict)
    isa: str = ""  # instruction set the variant was built and gated for (the quantised ones)
    engine: str = "onnxruntime"  # what runs the file (ENGINES)
    engine_options: Mapping[str, Any] = field(default_factory=dict)  # passed to the engine as gated
    # graph rewrites after quantisation and how often each applied (export/rosberta_export/rewrites.py)
    graph_rewrites: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ArtifactError(
                f"variant {self.name!r} names engine {self.engine!r}, which this rosberta-onnx does not "
                f"know (it runs {ENGINES}); upgrade rosberta-onnx or re-export the folder"
            )

    @property
    def gate_passed(self) -> bool:
        return bool(self.gate.get("passed", False))


@dataclass(frozen=True)
class Manifest:
    format_version: int
    source: Mapping[str, Any]  # {"model": id-or-path, "revision": ..., "stand_in": bool, "note": ...}
    model: ModelFacts
    tokenizer_file: str
    tokenizer_sha256: str
    opset: int
    tools: Mapping[str, str]
    variants: Mapping[str, VariantRecord]
    created: str = ""
    # files other tools read (config.json, tokenizer_config.json, sentence-transformers' modules ...) -> sha256,
    # generated from this manifest by the exporter (export/rosberta_export/interop.py)
    interop: Mapping[str, str] = field(default_factory=dict)
    # the reference set (reference.json + reference.npy, see reference.py): {"file", "files": name -> sha256,
    # "cases", "sts_pairs_per_lang"}; empty in artifacts exported before it existed
    reference: Mapping[str, Any] = field(default_factory=dict)

    # -- serialisation -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["model"]["input_names"] = list(self.model.input_names)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, where: str = MANIFEST_NAME) -> Manifest:
        version = d.get("format_version")
        if version != FORMAT_VERSION:
            raise ArtifactError(
                f"{where}: format_version {version!r} is not supported by this rosberta-onnx "
                f"(it reads version {FORMAT_VERSION}). Re-export the model with this version: "
                f"rosberta-onnx export MODEL -o DIR --overwrite"
            )
        try:
            m = dict(d["model"])
            m["input_names"] = tuple(m.get("input_names", ("input_ids", "attention_mask")))
            facts = ModelFacts(**m)
            variants = {k: VariantRecord(**v) for k, v in d["variants"].items()}
            return cls(
                format_version=version,
                source=d["source"],
                model=facts,
                tokenizer_file=d["tokenizer_file"],
                tokenizer_sha256=d["tokenizer_sha256"],
                opset=int(d["opset"]),
                tools=d.get("tools", {}),
                variants=variants,
                created=d.get("created", ""),
                interop=dict(d.get("interop", {})),
                reference=dict(d.get("reference", {})),
            )
        except (KeyError, TypeError) as exc:
            raise ArtifactError(
                f"{where} is missing or has a malformed field ({exc}). The folder was not written by a "
                f"complete export; re-export it: rosberta-onnx export MODEL -o DIR --overwrite"
            ) from exc

    def write(self, folder: str | os.PathLike) -> Path:
        return write_json_atomic(Path(folder) / MANIFEST_NAME, self.to_dict())

    @classmethod
    def read(cls, folder: str | os.PathLike) -> Manifest:
        folder = Path(folder)
        if not folder.is_dir():
            raise ArtifactNotFoundError(
                f"model folder {str(folder)!r} does not exist. Export one with: rosberta-onnx export MODEL -o {folder}"
            )
        path = folder / MANIFEST_NAME
        if not path.is_file():
            raise ArtifactNotFoundError(
                f"{str(path)!r} not found: {str(folder)!r} is not an exported rosberta-onnx folder "
                f"(or its export did not finish). Export it with: rosberta-onnx export MODEL -o {folder}"
            )
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ArtifactError(f"{str(path)!r} is not valid JSON ({exc}); re-export the folder") from exc
        if not isinstance(data, dict):
            raise ArtifactError(f"{str(path)!r} does not hold a JSON object; re-export the folder")
        return cls.from_dict(data, where=str(path))

    # -- checks --------------------------------------------------------------------------------
    def variant(self, name: str) -> VariantRecord:
        if name not in self.variants:
            from .errors import VariantError

            raise VariantError(
                f"variant {name!r} is not in this artifact; it has {sorted(self.variants)}. "
                f"Export it with: rosberta-onnx export MODEL -o DIR --variants {name} --overwrite"
            )
        return self.variants[name]

    def verify_files(self, folder: str | os.PathLike, files: Mapping[str, str]) -> None:
        """Check that each file exists and matches its recorded sha256."""
        folder = Path(folder)
        for rel, expected in files.items():
            p = folder / rel
            if not p.is_file():
                raise ArtifactNotFoundError(
                    f"{str(p)!r} is missing from the model folder. Re-export: "
                    f"rosberta-onnx export MODEL -o {folder} --overwrite"
                )
            actual = sha256_file(p)
            if actual != expected:
                raise ArtifactError(
                    f"{str(p)!r} does not match its checksum in {MANIFEST_NAME} (sha256 {actual[:12]}…, "
                    f"expected {expected[:12]}…): the file is corrupt or was replaced. Re-export: "
                    f"rosberta-onnx export MODEL -o {folder} --overwrite"
                )

    def metadata_props(self) -> dict[str, str]:
        """The runtime contract as flat strings, for an ONNX file's ``metadata_props``."""
        m = self.model
        return {
            METADATA_PREFIX + "format_version": str(self.format_version),
            METADATA_PREFIX + "source_model": str(self.source.get("model", "")),
            METADATA_PREFIX + "source_revision": str(self.source.get("revision", "")),
            METADATA_PREFIX + "pooling": m.pooling,
            METADATA_PREFIX + "normalize": json.dumps(m.normalize),
            METADATA_PREFIX + "max_length": str(m.max_length),
            METADATA_PREFIX + "pad_token_id": str(m.pad_token_id),
            METADATA_PREFIX + "dim": str(m.dim),
            METADATA_PREFIX + "prompts": json.dumps(dict(m.prompts), ensure_ascii=False),
        }


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
