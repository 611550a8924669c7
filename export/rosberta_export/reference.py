"""The PyTorch reference: the model card's recipe (transformers model -> pooling -> L2), nothing of ours.

It deliberately uses ``AutoModel`` / ``AutoTokenizer`` with their defaults, not our export graph, so the
parity figures measure the whole chain: our graph rewrite, the ONNX export, fusions, precision, and the
torch-free tokenisation and pooling.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["Reference"]


class Reference:
    def __init__(
        self, folder: str | Path, *, pooling: str, normalize: bool, max_length: int, threads: int | None = None
    ) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        if threads:
            torch.set_num_threads(threads)
        self.tokenizer = AutoTokenizer.from_pretrained(str(folder))
        self.model = AutoModel.from_pretrained(str(folder), add_pooling_layer=False).eval()
        self.pooling, self.normalize, self.max_length = pooling, normalize, max_length

    def tokenize(self, texts: list[str]) -> list[list[int]]:
        return self.tokenizer(texts, truncation=True, max_length=self.max_length)["input_ids"]

    def embed(self, texts: list[str], *, batch_size: int = 16, dtype=None) -> np.ndarray:
        """Padded batches in the given order (so rows of mixed length share a batch)."""
        import torch

        out = []
        for i in range(0, len(texts), batch_size):
            enc = self.tokenizer(
                texts[i : i + batch_size],
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            )
            enc.pop("token_type_ids", None)
            with torch.inference_mode(), torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
                hidden = self.model(**enc).last_hidden_state.float()
            if self.pooling == "cls":
                v = hidden[:, 0]
            else:
                m = enc["attention_mask"].unsqueeze(-1).float()
                v = (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)
            if self.normalize:
                v = torch.nn.functional.normalize(v, p=2, dim=1)
            out.append(v.numpy().astype(np.float32))
        return np.concatenate(out) if out else np.zeros((0, self.model.config.hidden_size), np.float32)
