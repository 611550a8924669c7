"""Real text shipped with the exporter: Russian and English STS sentences, plus the edge cases.

The parity suite, the int8 gate and the benchmarks all read their text from here, so every figure in a
manifest is measured on the same, reproducible material.
"""

from __future__ import annotations

import csv
import io
from functools import cache
from importlib import resources
from typing import NamedTuple

__all__ = ["StsPair", "sts_pairs", "sts_sentences", "parity_texts", "edge_cases", "LANGS"]

LANGS = ("en", "ru")


class StsPair(NamedTuple):
    """One STS pair: a tuple (sentence1, sentence2, score), as the runtime's quality figures take it."""

    sentence1: str
    sentence2: str
    score: float


@cache
def sts_pairs(lang: str, split: str = "dev") -> tuple[StsPair, ...]:
    if lang not in LANGS or split not in ("dev", "train"):
        raise ValueError(f"no STS file for lang={lang!r} split={split!r}; langs {LANGS}, splits dev/train")
    ref = resources.files(__package__) / "data" / "stsb" / f"stsb-{lang}-{split}.csv"
    rows = csv.reader(io.StringIO(ref.read_text(encoding="utf-8"), newline=""))
    return tuple(StsPair(r[0], r[1], float(r[2])) for r in rows if len(r) == 3)


def sts_sentences(split: str = "dev") -> list[str]:
    """Every sentence of both languages, in file order (duplicates kept)."""
    out: list[str] = []
    for lang in LANGS:
        for p in sts_pairs(lang, split):
            out += [p.sentence1, p.sentence2]
    return out


def parity_texts(n: int, *, seed: int = 0) -> list[str]:
    """``n`` real RU+EN dev sentences of mixed lengths, alternating languages, deterministic.

    Picks sentences spread over the length range (shortest to longest) rather than the first ``n``,
    so a padded batch of them mixes short and long rows.
    """
    import random

    out: list[str] = []
    rng = random.Random(seed)
    for lang in LANGS:
        sents = sorted({s for p in sts_pairs(lang) for s in (p.sentence1, p.sentence2)}, key=lambda s: (len(s), s))
        k = (n + 1) // 2 if lang == "en" else n // 2
        if k == 0:
            continue
        step = max(1, len(sents) // k)
        picked = sents[::step][:k]
        out += picked
    rng.shuffle(out)
    return out


def edge_cases(max_length: int) -> dict[str, str]:
    """Named texts that break naive tokenisation or padding.

    ``max_length`` is the model's usable length; the two length cases are sized in *words* that the
    byte-level BPE of a RoBERTa tokenizer maps to at least one token each.
    """
    long_unit = "слово word "
    return {
        "empty": "",
        "whitespace": " \t\n  ",
        "one_char": "я",
        "emoji_zwj": "Семья 👨‍👩‍👧‍👦 и флаг 🏳️‍🌈, ok 👍🏽",
        "combining_marks": "e\u0301te\u0301 и\u0306 ё vs е\u0308, Z\u0351\u0352a\u0353l\u0354g\u0355o",
        "special_tokens_in_text": "текст с <unk> и <s> и </s> и <pad> и <mask> внутри",
        "cjk_and_rtl": "混合 текст مرحبا text",
        "nul_and_controls": "a\x00b\x01c\u200bd",
        "longer_than_max": (long_unit * max_length).strip(),
        "prefix_search_query": "search_query: Сколько программистов нужно, чтобы вкрутить лампочку?",
        "prefix_search_document": "search_document: Чтобы вкрутить лампочку, требуется три программиста.",
        "prefix_classification": "classification: What a time to be alive!",
        "prefix_clustering": "clustering: В Ярославской области разрешили работу бань, но без посетителей",
    }
