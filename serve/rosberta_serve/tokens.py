"""``POST /tokenize``: each token's id, text, whether it is special, and its character span.

``Encoder.tokenize`` returns ids only (what the model needs), and truncates or raises on over-long
text; TEI's ``/tokenize`` also answers the token strings and offsets, and callers use it to *count*
tokens of texts that may be too long. So this module loads the artifact's own ``tokenizer.json`` a
second time, set up exactly as the runtime sets it up (no padding; truncation, when asked, to the
model's max length with special tokens kept), and a test checks its ids against ``Encoder.tokenize``.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["TokenDetails"]


class TokenDetails:
    def __init__(self, tokenizer_file: str | os.PathLike, *, max_length: int) -> None:
        from tokenizers import Tokenizer

        self._full = Tokenizer.from_file(str(tokenizer_file))
        self._full.no_padding()
        self._full.no_truncation()
        self._cut = Tokenizer.from_file(str(tokenizer_file))
        self._cut.no_padding()
        self._cut.enable_truncation(max_length=max_length)
        self._special = {i for i, tok in self._full.get_added_tokens_decoder().items() if tok.special}

    def details(self, texts: list[str], *, add_special_tokens: bool, truncate: bool) -> list[list[dict[str, Any]]]:
        """TEI's ``SimpleToken`` list per text: ``{"id", "text", "special", "start", "stop"}``.

        ``texts`` are as the model sees them (task prefix already applied), and offsets index into
        those strings. Special tokens have no span in the text: their ``start``/``stop`` are null.
        """
        tok = self._cut if truncate else self._full
        out = []
        for text, enc in zip(texts, tok.encode_batch(texts, add_special_tokens=add_special_tokens)):
            row = []
            for tid, (start, stop) in zip(enc.ids, enc.offsets):
                if tid in self._special:
                    row.append(
                        {"id": tid, "text": self._full.id_to_token(tid), "special": True, "start": None, "stop": None}
                    )
                else:
                    row.append({"id": tid, "text": text[start:stop], "special": False, "start": start, "stop": stop})
            out.append(row)
        return out

    def decode(self, rows: list[list[int]], *, skip_special_tokens: bool) -> list[str]:
        """TEI's ``/decode``: each id sequence back to text (the tokenizer's own decoder)."""
        return list(self._full.decode_batch(rows, skip_special_tokens=skip_special_tokens))
