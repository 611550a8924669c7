"""Texts longer than the model's window, as overlapping windows of tokens: where the windows go, and what one
text's chunks are.

The windows cover a text's own tokens (its task prefix and the special tokens are repeated in every window, not
counted): the first starts at token 0, each holds at most ``window`` tokens, consecutive ones share exactly
``overlap`` tokens, and the last is moved back so it is full (it may then share more). A text that fits is one
window, whose ids are exactly the truncated encoding's. Late chunking (one long forward pass, pooled per window)
needs a long-context model; RoSBERTa's 512 positions rule it out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Chunks", "ChunkPlan", "LONG_MODES", "long_mode", "windows", "check_window", "char_span", "mean_of_chunks"]

LONG_MODES = ("truncate", "error", "chunk")


@dataclass(frozen=True)
class Chunks:
    """One text's chunk vectors and where each chunk is in the text."""

    vectors: np.ndarray  # float32 (k, dim), normalised as the manifest says (unless normalize=False)
    token_spans: list[tuple[int, int]]  # (start, end) over the text's own tokens (prefix and specials excluded)
    char_spans: list[tuple[int, int]]  # (start, end) into the text as given: text[start:end] is the chunk's text
    tokens: int  # the text's own tokens (prefix and specials excluded)

    def __len__(self) -> int:
        return len(self.token_spans)


@dataclass(frozen=True)
class ChunkPlan:
    """One text's windows before they run: the ids the model sees for each, and where each is."""

    rows: list[list[int]]  # per window: specials, task prefix, the window's own ids, specials
    token_spans: list[tuple[int, int]]
    char_spans: list[tuple[int, int]]
    tokens: int  # the text's own tokens
    total: int  # the tokens of the whole text as the model would see it untruncated: prefix and specials included


def long_mode(long: str, truncate: bool = True) -> str:
    """``long`` checked; ``truncate=False`` (the older spelling of ``long="error"``) must not contradict it."""
    if long not in LONG_MODES:
        raise ValueError(f"long={long!r} is not one of {', '.join(LONG_MODES)}")
    if not truncate:
        if long == "chunk":
            raise ValueError(
                "truncate=False asks for an error on over-long texts, long='chunk' for chunking them; "
                "pass one of the two"
            )
        return "error"
    return long


def char_span(spans: list[tuple[int, int]], a: int, b: int) -> tuple[int, int]:
    """Characters from the first to the last of tokens ``a..b-1`` (``(0, 0)`` for an empty text)."""
    return (spans[a][0], spans[b - 1][1]) if b > a else (0, 0)


def mean_of_chunks(chunks: Chunks, normalize: bool) -> np.ndarray:
    """One vector for a chunked text: its windows' vectors averaged with each window's token count as weight, then
    L2-normalised when ``normalize``. One window is returned as it is (exactly the truncated text's vector)."""
    if len(chunks) == 1:
        return chunks.vectors[0]
    weights = np.array([b - a for a, b in chunks.token_spans], dtype=np.float64)
    mean = (chunks.vectors.astype(np.float64) * weights[:, None]).sum(0) / weights.sum()
    if normalize:
        mean /= max(float(np.linalg.norm(mean)), 1e-12)
    return mean.astype(np.float32)


def check_window(window: int, overlap: int, room: int) -> None:
    """``window`` tokens fit in ``room`` (what the max length leaves beside the specials and the prefix) and
    ``overlap`` is less than it: a ValueError naming the value otherwise."""
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise ValueError(f"window must be a whole number of tokens >= 1, got {window!r}")
    if window > room:
        raise ValueError(
            f"window={window} does not fit: the model's max length leaves {room} tokens beside the special "
            f"tokens and the task prefix; choose window <= {room} (or None for that)"
        )
    if isinstance(overlap, bool) or not isinstance(overlap, int) or not 0 <= overlap < window:
        raise ValueError(
            f"overlap must be a whole number of tokens from 0 to window - 1 ({window - 1}), got {overlap!r}"
        )


def windows(n: int, window: int, overlap: int) -> list[tuple[int, int]]:
    """(start, end) token spans covering ``n`` tokens; one (0, n) when they fit."""
    if n <= window:
        return [(0, n)]
    step = window - overlap
    spans = [(s, s + window) for s in range(0, n - window, step)]
    spans.append((n - window, n))  # the last full window, flush with the end
    return spans
