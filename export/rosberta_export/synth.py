"""Offline stand-ins for ru-en-RoSBERTa: the exact architecture with random weights.

No machine here reaches the model hub, so the pipeline is exercised on a randomly initialised
``RobertaModel`` with ru-en-RoSBERTa's shape (24 layers, hidden 1024, 16 heads, FFN 4096, vocab 50265,
514 positions, pad id 1: ~354 M parameters) or a tiny one of the same family. Same compute and speed
as the real model; **meaningless embeddings**. The folder says so in ``STAND_IN.md`` and in its config.

The tokenizer is a byte-level BPE (RoBERTa's kind) trained with the ``tokenizers`` library on the
Russian and English STS sentences shipped in ``data/stsb``.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .corpus import LANGS, sts_pairs
from .source import ROSBERTA_PROMPTS

__all__ = ["SIZES", "StandInSize", "synth"]

SPECIAL_TOKENS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]  # ids 0..4, pad = 1 as in RoBERTa


@dataclass(frozen=True)
class StandInSize:
    hidden: int
    layers: int
    heads: int
    ffn: int


SIZES = {
    "full": StandInSize(hidden=1024, layers=24, heads=16, ffn=4096),  # ru-en-RoSBERTa / roberta-large
    "tiny": StandInSize(hidden=64, layers=2, heads=4, ffn=128),
}
VOCAB_SIZE = 50265
MAX_POSITIONS = 514

NOTE = """# STAND-IN MODEL — NOT ru-en-RoSBERTa

This folder holds a **randomly initialised** RobertaModel with {what}.
It computes exactly what a model of that shape computes and runs at the same speed, but its embeddings
are **meaningless**: use it to test and benchmark the pipeline, never to embed text for real.

- size preset: {size}; seed: {seed}; parameters: {params:,}
- tokenizer: byte-level BPE trained on the Russian and English STS sentences shipped with
  rosberta-onnx (vocabulary {vocab} of the model's {model_vocab} slots; specials <s>=0 <pad>=1 </s>=2 <unk>=3 <mask>=4)
- sentence-transformers files: CLS pooling and RoSBERTa's four prompts, like the real checkpoint
"""


def _train_tokenizer(vocab_size: int):
    from tokenizers import ByteLevelBPETokenizer, processors

    texts = [
        s
        for lang in LANGS
        for split in ("train", "dev")
        for p in sts_pairs(lang, split)
        for s in (p.sentence1, p.sentence2)
    ]
    tok = ByteLevelBPETokenizer(add_prefix_space=False, trim_offsets=True)
    tok.train_from_iterator(
        texts, vocab_size=vocab_size, min_frequency=2, special_tokens=SPECIAL_TOKENS, show_progress=False
    )
    tok.post_processor = processors.RobertaProcessing(
        ("</s>", 2), ("<s>", 0), trim_offsets=True, add_prefix_space=False
    )
    return tok


def synth(
    out: str | os.PathLike,
    *,
    size: str = "full",
    seed: int = 0,
    sentence_transformers_files: bool = True,
    overwrite: bool = False,
) -> Path:
    """Write a stand-in checkpoint folder (Hugging Face format) to ``out``; returns the folder.

    Written into a temporary sibling folder and renamed into place, so a failed run leaves nothing
    that looks like a checkpoint.
    """
    if size not in SIZES:
        raise ValueError(f"unknown stand-in size {size!r}; choose one of {sorted(SIZES)}")
    import torch
    from transformers import RobertaConfig, RobertaModel, RobertaTokenizerFast

    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{str(out)!r} already exists; pass --overwrite to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    s = SIZES[size]
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        print("[synth] training the byte-level BPE tokenizer on the STS sentences", file=sys.stderr)
        bpe = _train_tokenizer(VOCAB_SIZE)
        tokenizer = RobertaTokenizerFast(
            tokenizer_object=bpe,
            bos_token="<s>",
            eos_token="</s>",
            sep_token="</s>",
            cls_token="<s>",
            unk_token="<unk>",
            pad_token="<pad>",
            mask_token="<mask>",
            model_max_length=MAX_POSITIONS - 2,
        )
        tokenizer.save_pretrained(tmp)

        config = RobertaConfig(
            vocab_size=VOCAB_SIZE,
            hidden_size=s.hidden,
            num_hidden_layers=s.layers,
            num_attention_heads=s.heads,
            intermediate_size=s.ffn,
            max_position_embeddings=MAX_POSITIONS,
            type_vocab_size=1,
            pad_token_id=1,
            bos_token_id=0,
            eos_token_id=2,
            layer_norm_eps=1e-5,
            hidden_act="gelu",
        )
        print(
            f"[synth] initialising a random RobertaModel ({size}: {s.layers} layers, hidden {s.hidden}), seed {seed}",
            file=sys.stderr,
        )
        torch.manual_seed(seed)
        model = RobertaModel(config, add_pooling_layer=False).eval()
        params = sum(p.numel() for p in model.parameters())
        model.save_pretrained(tmp, safe_serialization=True)
        # Mark the stand-in inside its config too, so the exporter can carry the warning into the manifest.
        cfg_path = tmp / "config.json"
        cfg = json.loads(cfg_path.read_text())
        cfg["rosberta_onnx_stand_in"] = {"size": size, "seed": seed, "note": "random weights: meaningless embeddings"}
        cfg_path.write_text(json.dumps(cfg, indent=2))

        if sentence_transformers_files:
            (tmp / "1_Pooling").mkdir()
            (tmp / "1_Pooling" / "config.json").write_text(
                json.dumps(
                    {
                        "word_embedding_dimension": s.hidden,
                        "pooling_mode_cls_token": True,
                        "pooling_mode_mean_tokens": False,
                        "pooling_mode_max_tokens": False,
                        "pooling_mode_mean_sqrt_len_tokens": False,
                    },
                    indent=2,
                )
            )
            (tmp / "config_sentence_transformers.json").write_text(
                json.dumps(
                    {"prompts": ROSBERTA_PROMPTS, "default_prompt_name": None, "similarity_fn_name": "cosine"}, indent=2
                )
            )
            (tmp / "modules.json").write_text(
                json.dumps(
                    [
                        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
                        {
                            "idx": 2,
                            "name": "2",
                            "path": "2_Normalize",
                            "type": "sentence_transformers.models.Normalize",
                        },
                    ],
                    indent=2,
                )
            )
            (tmp / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 512, "do_lower_case": False}))

        what = (
            "the exact ru-en-RoSBERTa architecture (24 layers, hidden 1024, 16 heads, FFN 4096, vocab 50265, "
            "514 positions, pad id 1)"
            if size == "full"
            else f"a tiny RoBERTa of the same family ({s.layers} layers, hidden {s.hidden}, {s.heads} heads, FFN {s.ffn})"
        )
        (tmp / "STAND_IN.md").write_text(
            NOTE.format(
                what=what, size=size, seed=seed, params=params, vocab=bpe.get_vocab_size(), model_vocab=VOCAB_SIZE
            )
        )
        if out.exists():
            shutil.rmtree(out)
        tmp.chmod(0o755)
        os.replace(tmp, out)
        print(f"[synth] wrote {out} ({params:,} parameters; random weights, meaningless embeddings)", file=sys.stderr)
        return out
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
