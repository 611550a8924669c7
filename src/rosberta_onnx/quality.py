"""The figures that say how faithful one set of vectors is to another: cosine per row, top-10 retrieval overlap and
STS Spearman correlation. The exporter's parity suite and quality gate, and ``verify`` on any CPU, compute them
here, so a figure measured at export and one re-measured on another machine mean the same thing."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "Embed",
    "Pair",
    "cosine_figures",
    "spearman",
    "top10_overlap",
    "retrieval_texts",
    "sts_figures",
    "misses",
    "memo",
]


def cosine_figures(ref: np.ndarray, got: np.ndarray, names: list[str]) -> dict:
    """Cosine and max abs difference of each row of ``got`` against ``ref``: min, mean, the worst case, and each case
    by name."""
    ref = ref.astype(np.float64)
    got = got.astype(np.float64)
    cos = (ref * got).sum(1) / np.maximum(np.linalg.norm(ref, axis=1) * np.linalg.norm(got, axis=1), 1e-30)
    mad = np.abs(ref - got).max(1)
    worst = int(np.argmin(cos))
    return {
        "n": int(len(names)),
        "cos_min": float(cos.min()),
        "cos_mean": float(cos.mean()),
        "max_abs": float(mad.max()),
        "worst_case": names[worst],
        "cases": {name: {"cos": float(c), "max_abs": float(m)} for name, c, m in zip(names, cos, mad)},
    }


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks with ties averaged (as scipy.stats.rankdata)."""
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = np.arange(1, len(x) + 1)
    vals, inv, counts = np.unique(x, return_inverse=True, return_counts=True)
    sums = np.bincount(inv, weights=ranks)
    return (sums / counts)[inv]


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = _ranks(np.asarray(a, dtype=np.float64)), _ranks(np.asarray(b, dtype=np.float64))
    ra -= ra.mean()
    rb -= rb.mean()
    return float((ra * rb).sum() / np.sqrt((ra**2).sum() * (rb**2).sum()))


def top10_overlap(ref: tuple[np.ndarray, np.ndarray], got: tuple[np.ndarray, np.ndarray]) -> float:
    """Mean overlap of each query's top-10 documents under ``got`` (query, document vectors) with ``ref``'s."""
    k = min(10, ref[1].shape[0])
    top_ref = np.argsort(-(ref[0] @ ref[1].T), axis=1)[:, :k]
    top_got = np.argsort(-(got[0] @ got[1].T), axis=1)[:, :k]
    return float(np.mean([len(set(x) & set(y)) / k for x, y in zip(top_ref, top_got)]))


Embed = Callable[[list[str], "str | None"], np.ndarray]
Pair = tuple[str, str, float]  # an STS pair: sentence1, sentence2, the human similarity score


def _task(prompts: Mapping[str, str], name: str) -> str | None:
    return name if name in prompts else None


def retrieval_texts(pairs: Sequence[Pair]) -> tuple[list[str], list[str]]:
    """(queries, documents) of the retrieval criterion: every sentence1, over the distinct sentence2s."""
    return [p[0] for p in pairs], list(dict.fromkeys(p[1] for p in pairs))


def sts_figures(base: Embed, other: Embed, *, prompts: Mapping[str, str], pairs: Mapping[str, Sequence[Pair]]) -> dict:
    """Retrieval and STS figures of ``other`` against ``base`` for each language's ``pairs``: the top-10 overlap of
    each sentence1 (as a search query) over the sentence2s (as documents), and the Spearman correlation of each
    embedding's pair cosines (classification prefix) with the human scores."""
    n = min((len(p) for p in pairs.values()), default=0)
    out: dict = {"pairs_per_lang": n, "top10_overlap": {}, "spearman_fp32": {}, "spearman_int8": {}}
    sts_task = _task(prompts, "classification")
    q_task, d_task = _task(prompts, "search_query"), _task(prompts, "search_document")
    for lang, lang_pairs in pairs.items():
        s1, s2 = [p[0] for p in lang_pairs], [p[1] for p in lang_pairs]
        gold = np.array([p[2] for p in lang_pairs], dtype=np.float64)
        for name, fn in (("fp32", base), ("int8", other)):
            a, b = fn(s1, sts_task), fn(s2, sts_task)
            out[f"spearman_{name}"][lang] = spearman((a * b).sum(1), gold)
        queries, docs = retrieval_texts(lang_pairs)
        out["top10_overlap"][lang] = top10_overlap(
            (base(queries, q_task), base(docs, d_task)), (other(queries, q_task), other(docs, d_task))
        )
    return out


def misses(
    cosines: Mapping[str, Any], figures: Mapping[str, Any], thresholds: Mapping[str, float]
) -> dict[str, list[str]]:
    """Per criterion (the keys of ``thresholds``), each figure that misses it, in words. ``cosines``: figures from
    :func:`cosine_figures`; ``figures``: from :func:`sts_figures` (criteria it lacks are not missed)."""
    out: dict[str, list[str]] = {name: [] for name in thresholds}
    if "cos_min" in thresholds and cosines["cos_min"] < thresholds["cos_min"]:
        out["cos_min"].append(
            f"cosine min {cosines['cos_min']:.5f} < {thresholds['cos_min']} (worst: {cosines['worst_case']})"
        )
    if "cos_mean" in thresholds and cosines["cos_mean"] < thresholds["cos_mean"]:
        out["cos_mean"].append(f"cosine mean {cosines['cos_mean']:.5f} < {thresholds['cos_mean']}")
    if "max_abs" in thresholds and cosines["max_abs"] > thresholds["max_abs"]:
        out["max_abs"].append(f"max abs {cosines['max_abs']:.2e} > {thresholds['max_abs']:.0e}")
    for lang, v in figures.get("top10_overlap", {}).items():
        if "top10_overlap_min" in thresholds and v < thresholds["top10_overlap_min"]:
            out["top10_overlap_min"].append(
                f"{lang} top-10 retrieval overlap with fp32 {v:.3f} < {thresholds['top10_overlap_min']}"
            )
    for lang, s8 in figures.get("spearman_int8", {}).items():
        d = abs(s8 - figures["spearman_fp32"][lang])
        if "spearman_delta_max" in thresholds and d > thresholds["spearman_delta_max"]:
            out["spearman_delta_max"].append(
                f"{lang} STS Spearman {s8:.4f} vs fp32 {figures['spearman_fp32'][lang]:.4f}: "
                f"differs by {d:.4f} > {thresholds['spearman_delta_max']}"
            )
    return out


def memo(embed: Embed) -> Embed:
    """``embed`` computing each (text, task) once: every variant is judged against the same fp32 vectors, and a text
    that comes back under the same task (a sentence2 that is also a retrieval document, when the model has no task
    prefixes) is not encoded again. Exact because a text's vector does not depend on its batch neighbours."""
    cache: dict[tuple[str, str | None], np.ndarray] = {}

    def cached(texts, task):
        new = [t for t in dict.fromkeys(texts) if (t, task) not in cache]
        if new:
            cache.update(((t, task), v) for t, v in zip(new, embed(new, task)))
        return np.stack([cache[(t, task)] for t in texts]) if texts else embed([], task)

    return cached
