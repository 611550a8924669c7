"""The files other tools read, written beside the manifest and generated from it, so they cannot disagree with it.

fastembed, sentence-transformers, optimum and transformers.js open a model folder by the Hugging Face
conventions rather than by our manifest. Each file here is derived from the manifest (and, for ``config.json``,
the source checkpoint's own config when the exporter has it):

- ``config.json``: the source config; from the manifest's model facts where the source is not at hand;
- ``tokenizer_config.json``: ``model_max_length`` = the manifest's max length (a copied source file says 512 where
  the artifact may run 256, and tools then truncate differently from us), the special tokens, the generic fast
  tokenizer class (``tokenizer.json`` holds the whole tokenizer);
- ``special_tokens_map.json``;
- sentence-transformers: ``modules.json`` (Transformer, Pooling, and Normalize when the manifest normalises),
  ``1_Pooling/config.json`` (CLS or mean, as the manifest says), ``sentence_bert_config.json`` (``max_seq_length``)
  and ``config_sentence_transformers.json`` carrying the prompt table, so ``prompt_name="search_query"`` applies
  our prefix there.

On request, the layout transformers.js expects: ``onnx/model.onnx`` (fp32) and ``onnx/model_quantized.onnx`` (int8,
its ``q8``), each with its weights as ``<name>_data`` (transformers.js's naming) and ``config.json`` saying so
(``transformers.js_config.use_external_data_format``). The weight files are hard links to the artifact's own (a copy
only across file systems), so the layout costs the graph files alone: ~0.5 MB on the full-size model. A graph whose
weights are external is re-saved with the new data-file name; one with inline weights is linked as it is.

The manifest lists them with their sha256 (``interop``). Writing is atomic per file, the manifest last.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path
from typing import Any

from rosberta_onnx import Manifest, MissingDependencyError
from rosberta_onnx.atomic import atomic_path, write_json_atomic
from rosberta_onnx.manifest import sha256_file

__all__ = ["INTEROP_FILES", "TRANSFORMERS_JS", "interop_documents", "write_interop"]

INTEROP_FILES = (
    "config.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "modules.json",
    "1_Pooling/config.json",
    "sentence_bert_config.json",
    "config_sentence_transformers.json",
)
# transformers.js file name for each variant it can run (its dtypes fp32 and q8)
TRANSFORMERS_JS = {"fp32": "model.onnx", "int8": "model_quantized.onnx"}
# Hugging Face's special-token roles, by the token text each architecture family uses
_ROLES = {
    "bos_token": ("<s>", "[CLS]"),
    "eos_token": ("</s>", "[SEP]"),
    "cls_token": ("<s>", "[CLS]"),
    "sep_token": ("</s>", "[SEP]"),
    "unk_token": ("<unk>", "[UNK]"),
    "pad_token": ("<pad>", "[PAD]"),
    "mask_token": ("<mask>", "[MASK]"),
}
_HF_MODEL = {"roberta": "RobertaModel", "xlm-roberta": "XLMRobertaModel", "bert": "BertModel"}


def _special_tokens(tokenizer: dict[str, Any]) -> dict[str, str]:
    present = {t["content"] for t in tokenizer.get("added_tokens", []) if t.get("special")}
    roles = {}
    for role, candidates in _ROLES.items():
        found = [c for c in candidates if c in present]
        if found:
            roles[role] = found[0]
    if tokenizer.get("model", {}).get("type") == "WordPiece":  # BERT has no bos/eos of its own
        roles.pop("bos_token", None)
        roles.pop("eos_token", None)
    return roles


def _config_from_facts(m: Manifest) -> dict[str, Any]:
    f = m.model
    return {
        "architectures": [_HF_MODEL.get(f.architecture, "AutoModel")],
        "model_type": f.architecture,
        "hidden_size": f.hidden_size,
        "num_hidden_layers": f.num_layers,
        "num_attention_heads": f.num_heads,
        "intermediate_size": f.intermediate_size,
        "vocab_size": f.vocab_size,
        "max_position_embeddings": f.max_position_embeddings,
        "pad_token_id": f.pad_token_id,
        "_note": "written by rosberta-onnx from its manifest: the source checkpoint's config.json was not at hand",
    }


def interop_documents(
    m: Manifest, tokenizer: dict[str, Any], source_config: dict[str, Any] | None
) -> dict[str, dict[str, Any] | list[Any]]:
    """Every interop file's JSON, keyed by its path in the artifact folder."""
    f = m.model
    special = _special_tokens(tokenizer)
    tok_config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": f.max_length,
        "clean_up_tokenization_spaces": False,
        "model_input_names": list(f.input_names),
        **special,
    }
    modules: list[dict[str, Any]] = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    if f.normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
    pooling = {
        "word_embedding_dimension": f.dim,
        "pooling_mode_cls_token": f.pooling == "cls",
        "pooling_mode_mean_tokens": f.pooling == "mean",
        "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False,
        "pooling_mode_weightedmean_tokens": False,
        "pooling_mode_lasttoken": False,
        "include_prompt": True,
    }
    return {
        "config.json": dict(source_config) if source_config else _config_from_facts(m),
        "tokenizer_config.json": tok_config,
        "special_tokens_map.json": special,
        "modules.json": modules,
        "1_Pooling/config.json": pooling,
        "sentence_bert_config.json": {"max_seq_length": f.max_length, "do_lower_case": False},
        "config_sentence_transformers.json": {
            "prompts": dict(f.prompts),
            "default_prompt_name": None,
            "similarity_fn_name": "cosine",
        },
    }


def _order(rel: str) -> tuple[int, str]:
    """The manifest lists the files in INTEROP_FILES order, then the transformers.js layout."""
    return (INTEROP_FILES.index(rel), "") if rel in INTEROP_FILES else (len(INTEROP_FILES), rel)


def _link_or_copy(src: Path, dst: Path) -> None:
    tmp = dst.with_name(f".{dst.name}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:  # another file system, or links not allowed: a copy
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def _transformers_js_layout(folder: Path, m: Manifest) -> tuple[dict[str, str], dict[str, int]]:
    """``onnx/`` for transformers.js: {path: sha256} of what was written, and its external-data table."""
    try:
        import onnx
    except ImportError as exc:
        raise MissingDependencyError(
            "the transformers.js layout re-saves graph files with onnx, which is not installed: pip install onnx"
        ) from exc
    out, external = {}, {}
    (folder / "onnx").mkdir(exist_ok=True)
    for variant, name in TRANSFORMERS_JS.items():
        rec = m.variants.get(variant)
        if rec is None:
            continue
        graph = onnx.load(str(folder / rec.file), load_external_data=False)
        located = {e.value for t in graph.graph.initializer for e in t.external_data if e.key == "location"}
        if not located:
            _link_or_copy(folder / rec.file, folder / "onnx" / name)
            out[f"onnx/{name}"] = rec.files[rec.file]
            continue
        if len(located) > 1:
            raise ValueError(f"{rec.file} spreads its weights over {sorted(located)}; expected one data file")
        (data,) = located
        for t in graph.graph.initializer:
            for e in t.external_data:
                if e.key == "location":
                    e.value = f"{name}_data"
        with atomic_path(folder / "onnx" / name) as tmp:
            onnx.save_model(graph, str(tmp))
        _link_or_copy(folder / data, folder / "onnx" / f"{name}_data")
        out[f"onnx/{name}"] = sha256_file(folder / "onnx" / name)
        out[f"onnx/{name}_data"] = rec.files[data]  # the same bytes as the variant's own, checked at export
        external[name] = 1
    return out, external


def write_interop(
    folder: str | Path, *, source_config: dict[str, Any] | None = None, transformers_js: bool = False
) -> Manifest:
    """Write the interop files into an exported ``folder`` and list them in its manifest. ``source_config``: the
    checkpoint's config (the exporter has it); otherwise a ``config.json`` already listed in the manifest is
    kept, and else one is written from the manifest's facts. ``transformers_js``: also the ``onnx/`` layout (kept
    on later refreshes once written)."""
    folder = Path(folder)
    m = Manifest.read(folder)
    tokenizer = json.loads((folder / m.tokenizer_file).read_text(encoding="utf-8"))
    existing = folder / "config.json"
    if source_config is None and "config.json" in m.interop and existing.is_file():
        source_config = json.loads(existing.read_text(encoding="utf-8"))
        source_config.pop("transformers.js_config", None)
    docs = interop_documents(m, tokenizer, source_config)
    sums: dict[str, str] = {}
    if transformers_js or any(k.startswith("onnx/") for k in m.interop):
        layout, external = _transformers_js_layout(folder, m)
        sums.update(layout)
        config = docs["config.json"]
        assert isinstance(config, dict)
        config["transformers.js_config"] = {"use_external_data_format": external}
    for rel, doc in docs.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, doc)
        sums[rel] = sha256_file(path)
    updated = dataclasses.replace(m, interop={k: sums[k] for k in sorted(sums, key=_order)})
    updated.write(folder)
    return updated
