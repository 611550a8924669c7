"""An export-friendly forward pass over a Hugging Face BERT-family encoder's own weights.

Why not export ``AutoModel`` directly: transformers 5's mask builders and its buffered token-type
gather trace into graphs that (a) onnxruntime's transformer optimizer cannot fuse into ``Attention``
and (b) the TorchScript exporter mis-translates outright (max abs error > 1 on the stand-in). This
module computes the same function in the classic formulation those tools were built for — additive
mask bias, explicit Q/K/V reshapes, exact-erf GELU, post-LayerNorm — using the checkpoint's weights
untouched. The parity suite compares its ONNX export against the unmodified transformers model, so
any drift between the two shows up as a failed parity figure, not as a silent error.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

__all__ = ["EncoderGraph", "SUPPORTED_ARCHITECTURES"]

# model_type in config.json -> does it compute RoBERTa-style positions (from input ids, offset by pad)?
SUPPORTED_ARCHITECTURES = {"roberta": True, "xlm-roberta": True, "bert": False}
_GELU = {"gelu": "none", "gelu_new": "tanh", "gelu_pytorch_tanh": "tanh"}
# Added to attention scores of padded keys. exp(-10000) underflows to exactly 0 in fp32 and fp16,
# and this constant is the mask pattern onnxruntime's Attention fusion recognises.
_MASK_BIAS = -10000.0


class EncoderGraph(nn.Module):
    """``(input_ids, attention_mask) -> last_hidden_state`` for BERT / RoBERTa / XLM-R encoders."""

    def __init__(self, hf_model: Any, *, model_type: str) -> None:  # a transformers model: attributes by config
        super().__init__()
        if model_type not in SUPPORTED_ARCHITECTURES:
            raise ValueError(
                f"architecture {model_type!r} is not supported; supported: {sorted(SUPPORTED_ARCHITECTURES)}"
            )
        cfg = hf_model.config
        if cfg.hidden_act not in _GELU:
            raise ValueError(f"activation {cfg.hidden_act!r} is not supported; supported: {sorted(_GELU)}")
        if getattr(cfg, "position_embedding_type", "absolute") != "absolute":
            raise ValueError(
                f"position_embedding_type {cfg.position_embedding_type!r} is not supported; only 'absolute'"
            )
        self.roberta_positions = SUPPORTED_ARCHITECTURES[model_type]
        self.pad_id = int(cfg.pad_token_id if cfg.pad_token_id is not None else 0)
        self.heads = int(cfg.num_attention_heads)
        self.head_dim = int(cfg.hidden_size) // self.heads
        self.gelu_approx = _GELU[cfg.hidden_act]
        self.emb: Any = hf_model.embeddings
        self.layers: Any = hf_model.encoder.layer

    def _positions(self, input_ids: torch.Tensor) -> torch.Tensor:
        if self.roberta_positions:
            # RoBERTa numbers real tokens from pad_id + 1 and gives pads the pad position, so the
            # graph computes positions from `input_ids != pad_id`: callers must pad with the real pad id.
            mask = input_ids.ne(self.pad_id).to(torch.int64)
            return torch.cumsum(mask, dim=1) * mask + self.pad_id
        seq = input_ids.shape[1]
        return torch.arange(seq, dtype=torch.int64, device=input_ids.device).unsqueeze(0).expand_as(input_ids)

    def _attention(self, layer: Any, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        att = layer.attention.self
        b, s, h = x.shape
        q = att.query(x).reshape(b, s, self.heads, self.head_dim).permute(0, 2, 1, 3)
        k = att.key(x).reshape(b, s, self.heads, self.head_dim).permute(0, 2, 3, 1)
        v = att.value(x).reshape(b, s, self.heads, self.head_dim).permute(0, 2, 1, 3)
        scores = torch.matmul(q, k) / math.sqrt(self.head_dim) + bias
        ctx = torch.matmul(torch.softmax(scores, dim=-1), v).permute(0, 2, 1, 3).reshape(b, s, h)
        out = layer.attention.output
        return out.LayerNorm(out.dense(ctx) + x)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        e = self.emb
        x = e.word_embeddings(input_ids) + e.position_embeddings(self._positions(input_ids))
        x = x + e.token_type_embeddings.weight[0]  # single-segment input: token type 0 everywhere
        x = e.LayerNorm(x)
        bias = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * _MASK_BIAS
        for layer in self.layers:
            x = self._attention(layer, x, bias)
            hidden = nn.functional.gelu(layer.intermediate.dense(x), approximate=self.gelu_approx)
            x = layer.output.LayerNorm(layer.output.dense(hidden) + x)
        return x
