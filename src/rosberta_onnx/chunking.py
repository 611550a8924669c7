"""Texts longer than the model's window, as overlapping windows of tokens: where the windows go, and what one
text's chunks are.

The windows cover a text's own tokens (its task prefix and the special tokens are repeated in every window, not
counted). Each holds at most ``window`` tokens and starts where a word starts (:func:`word_starts`), so the text a
window's character span shows tokenises to the window's own ids and a stored chunk's vector is its text's vector. The
first starts at token 0 and is as long as it may be, so a text's first window is exactly its truncated encoding; each
next one starts at the word start nearest ``overlap`` tokens before the end of the one before (so consecutive windows
share about ``overlap`` tokens, in whole words); the last ends at the text's end and starts as early as a full window
allows, at a word start. A word longer than a window is the one place a window starts mid-word. A text that fits is
one window, whose ids are exactly the truncated encoding's. Late chunking (one long forward pass, pooled per window)
needs a long-context model; RoSBERTa's 512 positions rule it out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "Chunks",
    "ChunkPlan",
    "LONG_MODES",
    "WordRule",
    "long_mode",
    "windows",
    "word_starts",
    "check_window",
    "char_span",
    "mean_of_chunks",
]

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


@dataclass(frozen=True)
class WordRule:
    """How a tokenizer marks where a word starts, read from its ``tokenizer.json`` model (the JS runtime reads the
    same fields): WordPiece marks the pieces that continue a word (``continuing_subword_prefix``, ``##``); byte-level
    BPE and SentencePiece mark the pieces that start one with the space before them (``Ġ``, ``▁``) and newlines with
    ``Ċ``. Without either mark every token counts as a start (windows then cut between any two tokens)."""

    continuation: str = ""  # a token starting with this continues the word before it
    starters: str = ""  # a token starting with one of these characters starts a word

    @staticmethod
    def from_model(model: dict) -> WordRule:
        """The rule of a ``tokenizer.json``'s ``model`` section."""
        if model.get("continuing_subword_prefix"):
            return WordRule(continuation=str(model["continuing_subword_prefix"]))
        if model.get("type") in ("BPE", "Unigram"):
            return WordRule(starters=WORD_MARKS)
        return WordRule()


# the characters byte-level BPE writes for a space, newline, tab, carriage return, vertical tab and form feed, and
# SentencePiece's space: a piece that begins with one begins a word (or is whitespace before one)
WORD_MARKS = "\u0120\u010a\u0109\u010d\u010b\u010c\u2581"


def word_starts(tokens: list[str], rule: WordRule) -> list[bool]:
    """For each of a text's own tokens, whether a window may start there: the first token, and every token that
    begins a word by ``rule``."""
    if rule.continuation:
        marks = [not t.startswith(rule.continuation) for t in tokens]
    elif rule.starters:
        marks = [bool(t) and t[0] in rule.starters for t in tokens]
    else:
        marks = [True] * len(tokens)
    if marks:
        marks[0] = True
    return marks


def windows(n: int, window: int, overlap: int, starts: list[bool] | None = None) -> list[tuple[int, int]]:
    """(start, end) token spans covering ``n`` tokens; one (0, n) when they fit. ``starts``: where a window may start
    (:func:`word_starts`; default: anywhere, which puts consecutive windows exactly ``overlap`` tokens apart)."""
    if n <= window:
        return [(0, n)]
    ok = starts if starts is not None else [True] * n
    spans = []
    a = 0
    while a + window < n:
        b = a + window
        spans.append((a, b))
        a = _nearest_start(ok, b - overlap, lo=a + 1, hi=b)
    # the last window ends at n and starts as early as a full window allows, at a word start
    spans.append((_first_start(ok, max(n - window, 0), a), n))
    return spans


def _nearest_start(ok: list[bool], target: int, *, lo: int, hi: int) -> int:
    """The word start in ``lo..hi`` nearest ``target`` (the earlier one on a tie: more overlap, not less); ``hi``
    when there is none (a word longer than the window: the next window starts where this one ends)."""
    found = [i for i in range(lo, hi + 1) if ok[i]]
    return min(found, key=lambda i: (abs(i - target), i)) if found else hi


def _first_start(ok: list[bool], lo: int, hi: int) -> int:
    """The first word start in ``lo..hi`` (``hi`` itself when none is)."""
    return next((i for i in range(lo, hi) if ok[i]), hi)
