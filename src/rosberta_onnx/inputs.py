"""Checking what callers pass as texts, before any of it reaches the tokenizer."""

from __future__ import annotations

from collections.abc import Sequence

from .errors import InputTypeError

__all__ = ["as_text_list"]


def _clean(text: str) -> str:
    # Lone surrogates (from `surrogateescape`-decoded files or JSON "\ud800") can't be encoded as UTF-8
    # and would raise deep inside the tokenizer; replace each with U+FFFD like a lenient decoder would.
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def as_text_list(texts: str | Sequence[str]) -> list[str]:
    """Validate ``texts`` and return them as a list of clean ``str``.

    A bare ``str`` is one text. Anything else must be a sequence (list, tuple, ...) of ``str``;
    ``None``, bytes, numbers or nested lists raise :class:`InputTypeError` naming the first bad index.
    """
    if isinstance(texts, str):
        return [_clean(texts)]
    if isinstance(texts, (bytes, bytearray)) or not isinstance(texts, Sequence):
        kind = type(texts).__name__
        raise InputTypeError(
            f"texts must be a str or a list of str, got {kind}. "
            + (
                "Decode bytes first: data.decode('utf-8')."
                if isinstance(texts, (bytes, bytearray))
                else "Wrap a single text in a list."
            )
        )
    out: list[str] = []
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            hint = " (nested lists are not flattened; pass one flat list)" if isinstance(t, (list, tuple)) else ""
            raise InputTypeError(f"texts[{i}] is {type(t).__name__}, not str{hint}. Every text must be a str.")
        out.append(_clean(t))
    return out
