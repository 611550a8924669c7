"""The inputs every system gets: fixed-shape batches of real STS words, the STS corpus, a length sweep.

Fixed shapes are built with the artifact's own tokenizer so that each text is *exactly* N tokens
(specials included): "8×128" then means the same 8×128 token matrix for every system, not "8 texts of
roughly that size". Texts carry RoSBERTa's task prefix as plain text, so every system sees identical
strings and nobody's prefix handling is being measured.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

__all__ = ["Workload", "Settings", "SETTINGS", "build_workloads", "exact_length_texts"]

QUERY_PREFIX = "search_query: "
DOC_PREFIX = "search_document: "
# One-token tails tried in order to land exactly on N after whole words overshoot.
_FILLERS = (" .", " ,", " a", " и", ".", ",")


@dataclass(frozen=True)
class Workload:
    name: str  # "latency_1x16", "throughput_8x128", "corpus", "scaling_256"
    kind: str  # "latency" | "throughput" | "corpus" | "scaling"
    texts: tuple[str, ...]
    tokens: int  # per text for fixed shapes; total content tokens (no padding) for the corpus
    rounds: int
    calls: int = 1  # timed calls per system per round (latency takes many, to get p95/p99)
    own_batching: bool = False  # corpus: each system batches the way it does by default

    @property
    def batch(self) -> int:
        return len(self.texts)

    @property
    def label(self) -> str:
        if self.kind == "corpus":
            return f"corpus ({self.batch} RU/EN STS texts)"
        return f"{self.batch}×{self.tokens}"


@dataclass(frozen=True)
class Settings:
    latency_rounds: int
    latency_calls: int
    rounds_8x128: int
    rounds_32x128: int
    rounds_1x512: int
    corpus_size: int
    corpus_rounds: int
    seq_lengths: tuple[int, ...]
    scaling_rounds: int
    warmup: int = 1  # untimed calls per system before each workload's rounds (latency: 3)
    extra: dict = field(default_factory=dict)

    def with_rounds(self, rounds: int) -> Settings:
        """Every workload with the same number of rounds (a smoke-test override)."""
        return replace(
            self,
            latency_rounds=rounds,
            rounds_8x128=rounds,
            rounds_32x128=rounds,
            rounds_1x512=rounds,
            corpus_rounds=rounds,
            scaling_rounds=rounds,
        )


SETTINGS = {
    # Minutes on the tiny stand-in: proves the harness, measures nothing worth publishing.
    "quick": Settings(
        latency_rounds=3,
        latency_calls=5,
        rounds_8x128=3,
        rounds_32x128=2,
        rounds_1x512=2,
        corpus_size=48,
        corpus_rounds=2,
        seq_lengths=(16, 64, 128, 256, 512),
        scaling_rounds=2,
    ),
    # The published run. Rounds are few because every round runs every system once (minutes on the
    # full-size model); the ratio is taken inside each round, which is what holds on noisy machines.
    "full": Settings(
        latency_rounds=7,
        latency_calls=10,
        rounds_8x128=5,
        rounds_32x128=3,
        rounds_1x512=5,
        corpus_size=256,
        corpus_rounds=3,
        seq_lengths=(16, 32, 64, 128, 256, 512),
        scaling_rounds=3,
    ),
}


def _word_streams(seed: int) -> dict[str, list[str]]:
    from rosberta_export.corpus import LANGS, sts_pairs

    out = {}
    rng = random.Random(seed)
    for lang in LANGS:
        sents = sorted({s for p in sts_pairs(lang) for s in (p.sentence1, p.sentence2)})
        rng.shuffle(sents)
        out[lang] = " ".join(sents).split()
    return out


def _exact(count: Callable[[str], int], n: int, words: Sequence[str], start: int, prefix: str) -> str:
    if count(prefix) > n:
        prefix = ""
    text, i = prefix.rstrip(), start
    # Whole words while they fit, then one-token fillers for the last few tokens.
    while True:
        cand = (text + " " + words[i % len(words)]).strip()
        if count(cand) > n:
            break
        text, i = cand, i + 1
        if count(text) == n:
            return text
    for filler in _FILLERS:
        attempt = text
        while count(attempt) < n:
            nxt = attempt + filler
            if count(nxt) != count(attempt) + 1:
                break
            attempt = nxt
        if count(attempt) == n:
            return attempt
    raise RuntimeError(
        f"could not build a text of exactly {n} tokens (got {count(text)}); the tokenizer "
        f"merges every filler tried ({_FILLERS})"
    )


def exact_length_texts(
    count: Callable[[str], int], n: int, k: int, *, prefix: str = DOC_PREFIX, seed: int = 0
) -> list[str]:
    """``k`` different texts of real RU/EN STS words, each exactly ``n`` tokens (specials included)."""
    streams = _word_streams(seed)
    langs = sorted(streams)
    out = []
    for j in range(k):
        words = streams[langs[j % len(langs)]]
        out.append(_exact(count, n, words, start=(j * 997) % len(words), prefix=prefix))
    return out


def build_workloads(
    count: Callable[[str], int], max_length: int, settings: Settings, *, only: Sequence[str] | None = None
) -> list[Workload]:
    """The benchmark's workloads, in run order. ``count(text)`` is tokens with specials (artifact tokenizer)."""
    from rosberta_export.corpus import parity_texts

    s = settings
    fixed = [
        ("latency_1x16", "latency", 1, 16, s.latency_rounds, s.latency_calls, QUERY_PREFIX),
        ("throughput_8x128", "throughput", 8, 128, s.rounds_8x128, 1, DOC_PREFIX),
        ("throughput_32x128", "throughput", 32, 128, s.rounds_32x128, 1, DOC_PREFIX),
        ("throughput_1x512", "throughput", 1, 512, s.rounds_1x512, 1, DOC_PREFIX),
    ]
    out: list[Workload] = []
    for name, kind, k, n, rounds, calls, prefix in fixed:
        n = min(n, max_length)
        out.append(Workload(name, kind, tuple(exact_length_texts(count, n, k, prefix=prefix)), n, rounds, calls))
    corpus = tuple(DOC_PREFIX + t for t in parity_texts(s.corpus_size, seed=1))
    tokens = sum(min(count(t), max_length) for t in corpus)
    out.append(Workload("corpus", "corpus", corpus, tokens, s.corpus_rounds, 1, own_batching=True))
    for n in s.seq_lengths:
        if n <= max_length:
            # Several calls per round for the short ones, whose single-call times are mostly noise.
            calls = max(1, min(5, max_length // n // 2))
            out.append(
                Workload(
                    f"scaling_{n}",
                    "scaling",
                    tuple(exact_length_texts(count, n, 1, seed=n)),
                    n,
                    s.scaling_rounds,
                    calls,
                )
            )
    if only:
        unknown = [w for w in only if not any(x.name == w or x.kind == w for x in out)]
        if unknown:
            raise ValueError(
                f"unknown workload(s) {unknown}; choose from {[x.name for x in out]} or a kind "
                f"(latency, throughput, corpus, scaling)"
            )
        out = [x for x in out if x.name in only or x.kind in only]
    return out
