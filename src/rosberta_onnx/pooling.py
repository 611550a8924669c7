"""Pooling and normalisation of the encoder's last hidden state (numpy only)."""

from __future__ import annotations

import numpy as np

from .errors import ArtifactError

__all__ = ["pool", "l2_normalize"]


def pool(hidden: np.ndarray, mask: np.ndarray, method: str) -> np.ndarray:
    """``hidden`` (b, s, d), ``mask`` (b, s) of 0/1 -> (b, d) float32."""
    hidden = hidden.astype(np.float32, copy=False)
    if method == "cls":
        return np.ascontiguousarray(hidden[:, 0, :])
    if method == "mean":
        if hidden.shape[1] != mask.shape[1]:
            raise ArtifactError(
                f"mean pooling needs a hidden state for each of the {mask.shape[1]} positions, but the model returned "
                f"{hidden.shape[1]}: this graph computes only the first token (made for CLS pooling). Re-export the "
                f"model: rosberta-onnx export MODEL -o DIR --overwrite"
            )
        m = mask.astype(np.float32)[:, :, None]
        # Every row has at least its special tokens, so the count is never 0; the guard is for safety.
        return (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1.0)
    raise ValueError(f"pooling {method!r} is not supported; expected 'cls' or 'mean'")


def l2_normalize(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, eps)
