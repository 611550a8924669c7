"""Torch-free tokenisation from ``tokenizer.json`` with the model's own padding and truncation.

``tokenizer.json`` files may carry padding/truncation blocks of their own that silently override the
caller's (a fixed pad length, or a ``max_length`` of 128 capping a 512-token model). Both are cleared
on load; this module pads and truncates itself, from the manifest's facts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from .chunking import WordRule, word_starts
from .errors import ArtifactError, InputTooLongError

__all__ = ["TextTokenizer", "Tokenized", "Split"]


@dataclass(frozen=True)
class Tokenized:
    ids: list[list[int]]  # per text, specials included, truncated to max_length when asked
    token_counts: np.ndarray  # int64 (n,): tokens before truncation, specials included
    truncated: np.ndarray  # bool (n,)

    @property
    def lengths(self) -> list[int]:
        return [len(x) for x in self.ids]


@dataclass(frozen=True)
class Split:
    """One text's encoding split where its own words start: what every window of it repeats (the specials and the
    task prefix's ids), and the text's own ids with their character spans in the text."""

    head: list[int]  # the specials before the text and its task prefix's ids
    content: list[int]  # the text's own ids
    spans: list[tuple[int, int]]  # per content id, (start, end) characters in the text as given
    tail: list[int]  # the specials after the text
    starts: list[bool]  # per content id, whether a word starts there (where a window may start)


class TextTokenizer:
    def __init__(self, path: str | os.PathLike, *, max_length: int, pad_id: int) -> None:
        from tokenizers import Tokenizer

        try:
            tok = Tokenizer.from_file(str(path))
        except Exception as exc:  # tokenizers raises a bare Exception on malformed files
            raise ArtifactError(
                f"{str(path)!r} is not a readable tokenizer.json ({exc}); re-export the model folder"
            ) from exc
        tok.no_padding()
        tok.no_truncation()
        self._full = tok
        # The special ids the post-processor puts around a text's own: a probe encoded with and without them.
        bare = tok.encode("a", add_special_tokens=False).ids
        full = tok.encode("a", add_special_tokens=True).ids
        at = next((p for p in range(len(full) - len(bare) + 1) if full[p : p + len(bare)] == bare), None)
        if at is None:
            raise ArtifactError(f"{str(path)!r}: cannot tell its special tokens from the text (probe {full})")
        self._prefix, self._suffix = full[:at], full[at + len(bare) :]
        if len(self._prefix) + len(self._suffix) >= max_length:
            raise ArtifactError(f"max length {max_length} leaves no room for text besides the special tokens {full}")
        self.max_length = max_length
        self.pad_id = pad_id
        model = tok.model
        self.word_rule = WordRule.from_model(
            {"type": type(model).__name__, "continuing_subword_prefix": getattr(model, "continuing_subword_prefix", "")}
        )

    def tokenize(self, texts: list[str], *, truncate: bool = True) -> Tokenized:
        encs = self._full.encode_batch(texts, add_special_tokens=True)
        ids = [e.ids for e in encs]
        counts = np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))
        over = np.flatnonzero(counts > self.max_length)
        if over.size and not truncate:
            i = int(over[0])
            raise InputTooLongError(
                f"texts[{i}] has {int(counts[i])} tokens, more than this model's max length of {self.max_length} "
                f"({over.size} text(s) are over). Pass long='truncate' to cut them, or long='chunk' to embed them in windows."
            )
        # Truncation as transformers does it (the text's own ids cut, the specials kept): those ids are the middle
        # of the full encoding, so cut there instead of encoding the text again (a 10 MB text would cost twice).
        room = self.max_length - len(self._prefix) - len(self._suffix)
        start = len(self._prefix)
        for k in over.tolist():
            ids[k] = self._prefix + ids[k][start : start + room] + self._suffix
        truncated = counts > self.max_length
        return Tokenized(ids=ids, token_counts=counts, truncated=truncated)

    def split(self, texts: list[str], starts: list[int], shifts: list[int]) -> list[Split]:
        """Each text's ids (specials included, never truncated) split at ``starts[i]``, the character where the
        text's own words begin: an id whose characters start before it belongs to the prefix. Character spans are
        moved back by ``shifts[i]``, the characters a prefix added in front, so they index the text as given. One
        tokenisation of the whole prompted text, so a chunked text's first window is exactly its truncated
        encoding."""
        out = []
        for enc, start, shift in zip(self._full.encode_batch(texts, add_special_tokens=False), starts, shifts):
            k = next((i for i, (a, _) in enumerate(enc.offsets) if a >= start), len(enc.ids))
            out.append(
                Split(
                    head=self._prefix + enc.ids[:k],
                    content=enc.ids[k:],
                    spans=[(a - shift, b - shift) for a, b in enc.offsets[k:]],
                    tail=list(self._suffix),
                    starts=word_starts(enc.tokens[k:], self.word_rule),
                )
            )
        return out

    @property
    def specials(self) -> int:
        """Special tokens around every text (2 for RoBERTa's and BERT's <s>/[CLS] and </s>/[SEP])."""
        return len(self._prefix) + len(self._suffix)

    def pad(self, rows: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
        """Right-pad with the model's real pad id (RoBERTa computes positions from ids != pad_id)."""
        width = max(len(r) for r in rows)
        ids = np.full((len(rows), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for j, r in enumerate(rows):
            ids[j, : len(r)] = r
            mask[j, : len(r)] = 1
        return ids, mask
