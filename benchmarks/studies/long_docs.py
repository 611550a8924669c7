"""Long documents: how well each way of embedding a text longer than the model's window finds a sentence placed
beyond the first window, and what it costs.

    python -m benchmarks.studies.long_docs QUALITY_ARTIFACT [--speed SPEED_ARTIFACT] [--docs 200] [--out DIR]

The set, per language, from the shipped STS dev pairs: for each of ``--docs`` pairs with a human score of at least
4 (near-paraphrases), a document of 1.3 to 3 of the model's windows made of other STS sentences, with the pair's
first sentence placed after the first window (the needle), and its second sentence as the query. Every query is
searched over every document of its language. Modes:

- ``truncate``: the document cut to the max length (the needle is never in it: recall at chance is the floor);
- ``document``: one vector per document, the token-weighted mean of its windows (``long="chunk"``);
- ``best chunk``: a document scores as its best window (max cosine over its windows).

Windows of 64, 128, 256 tokens and the most that fit, overlap window/8. Quality wants trained weights (MiniLM);
cost (tokens embedded per document, seconds per document) is measured on a second artifact, the full-size stand-in.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np

from ..harness.machine import cpu_facts
from ..harness.results import save
from ..harness.runner import as_run

WINDOWS = (64, 128, 256, None)  # None: the most that fit


def build_set(enc, lang: str, n_docs: int, seed: int = 0) -> tuple[list[str], list[str], list[int]]:
    """(documents, queries, each needle's token position in its document)."""
    from rosberta_export.corpus import sts_pairs

    pairs = list(sts_pairs(lang, "dev"))
    rng = random.Random(seed)
    needles = [p for p in pairs if p.score >= 4.0]
    rng.shuffle(needles)
    needles = needles[:n_docs]
    used = {p.sentence1 for p in needles} | {p.sentence2 for p in needles}
    filler = [s for p in pairs for s in (p.sentence1, p.sentence2) if s not in used]
    room = enc.max_length - 2
    docs, queries, where = [], [], []
    for p in needles:
        target = int(room * rng.uniform(1.3, 3.0))
        parts, tokens = [], 0
        while tokens <= room:  # past the first window...
            s = rng.choice(filler)
            parts.append(s)
            tokens += int(enc.count_tokens([s])[0]) - 2
        where.append(tokens)
        parts.append(p.sentence1)  # ...the needle...
        tokens += int(enc.count_tokens([p.sentence1])[0]) - 2
        while tokens < target:  # ...and more filler, to a document of 1.3 to 3 windows
            s = rng.choice(filler)
            parts.append(s)
            tokens += int(enc.count_tokens([s])[0]) - 2
        docs.append(" ".join(parts))
        queries.append(p.sentence2)
    return docs, queries, where


def _windows(enc) -> list[int | None]:
    """The windows that fit this model beside ``None`` (all that fit): MiniLM's max length is 256."""
    return [w for w in WINDOWS if w is None or w < enc.max_length - 2]


def _task(enc, name: str) -> str | None:
    return name if name in enc.tasks else None


def recall(scores: np.ndarray) -> tuple[float, float]:
    """recall@1 and @10 of (query i -> document i) from a (queries, documents) score matrix."""
    target = scores[np.arange(len(scores)), np.arange(len(scores))]
    rank = (scores > target[:, None]).sum(1)  # documents scoring above the right one
    return float((rank < 1).mean()), float((rank < 10).mean())


def quality(enc, lang: str, n_docs: int) -> list[dict]:
    docs, queries, _ = build_set(enc, lang, n_docs)
    q = enc.encode(queries, task=_task(enc, "search_query"))
    d_task = _task(enc, "search_document")
    rows = []
    t = time.perf_counter()
    trunc = enc.encode(docs, task=d_task)
    tokens = sum(len(r) for r in enc.tokenize(docs, task=d_task))
    rows.append(
        {
            "lang": lang,
            "mode": "truncate",
            "window": enc.max_length,
            **dict(zip(("r1", "r10"), recall(q @ trunc.T))),
            "tokens_per_doc": tokens / len(docs),
            "seconds": time.perf_counter() - t,
        }
    )
    for window in _windows(enc):
        t = time.perf_counter()
        chunks = enc.encode_chunks(docs, task=d_task, window=window)
        seconds = time.perf_counter() - t
        tokens = sum(len(r) for p in enc.plan(docs, task=d_task, window=window) for r in p.rows)
        from rosberta_onnx import mean_of_chunks

        doc_vecs = np.stack([mean_of_chunks(c, True) for c in chunks])
        best = np.stack([(q @ c.vectors.T).max(1) for c in chunks], axis=1)
        w = window or chunks[0].token_spans[0][1] - chunks[0].token_spans[0][0]
        for mode, scores in (("document", q @ doc_vecs.T), ("best chunk", best)):
            rows.append(
                {
                    "lang": lang,
                    "mode": mode,
                    "window": w,
                    **dict(zip(("r1", "r10"), recall(scores))),
                    "tokens_per_doc": tokens / len(docs),
                    "seconds": seconds,
                    "windows_per_doc": sum(len(c) for c in chunks) / len(docs),
                }
            )
    return rows


def cost(enc, n_docs: int) -> list[dict]:
    """Seconds and tokens per document on ``enc`` (the full-size model), for truncate and each window."""
    docs, _, _ = build_set(enc, "en", n_docs, seed=1)
    d_task = _task(enc, "search_document")
    enc.encode(docs[:2], task=d_task)  # warm-up
    rows = []
    t = time.perf_counter()
    enc.encode(docs, task=d_task)
    rows.append(
        {
            "mode": "truncate",
            "window": enc.max_length,
            "seconds_per_doc": (time.perf_counter() - t) / len(docs),
            "tokens_per_doc": sum(len(r) for r in enc.tokenize(docs, task=d_task)) / len(docs),
        }
    )
    for window in _windows(enc):
        plans = enc.plan(docs, task=d_task, window=window)
        t = time.perf_counter()
        enc.encode_chunks(docs, task=d_task, window=window)
        rows.append(
            {
                "mode": "chunks",
                "window": len(plans[0].rows[0]) - 2 if window is None else window,
                "seconds_per_doc": (time.perf_counter() - t) / len(docs),
                "tokens_per_doc": sum(len(r) for p in plans for r in p.rows) / len(docs),
            }
        )
    return rows


def table(res: dict, command: str) -> str:
    lines = [
        f"Long-document retrieval on `{res['quality_artifact']}` ({res['docs']} documents per language of 1.3-3 "
        f"windows, the needle after the first window), on {res['cpu']['description']}. "
        f"Reproduce: `python -m benchmarks.studies.long_docs {command}`",
        "",
        "| lang | mode | window | recall@1 | recall@10 | windows / doc | tokens embedded / doc | s |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in res["quality"]:
        lines.append(
            f"| {r['lang']} | {r['mode']} | {r['window']} | {r['r1']:.3f} | {r['r10']:.3f} | "
            f"{r.get('windows_per_doc', 1):.1f} | {r['tokens_per_doc']:.0f} | {r['seconds']:.1f} |"
        )
    if res.get("cost"):
        lines += [
            "",
            f"Cost on `{res['speed_artifact']}` ({res['speed_variant']}, {res['speed_docs']} EN documents):",
            "",
            "| mode | window | seconds / doc | tokens embedded / doc |",
            "|---|---:|---:|---:|",
        ]
        for r in res["cost"]:
            lines.append(f"| {r['mode']} | {r['window']} | {r['seconds_per_doc']:.2f} | {r['tokens_per_doc']:.0f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.studies.long_docs", description=__doc__.split("\n\n")[0])
    ap.add_argument("artifact", help="an export with trained weights (MiniLM here; the real RoSBERTa at yours)")
    ap.add_argument("--variant", default="fp32")
    ap.add_argument("--speed", default=None, help="a second artifact to time (the full-size stand-in)")
    ap.add_argument("--speed-variant", default="int8")
    ap.add_argument("--speed-docs", type=int, default=8)
    ap.add_argument("--docs", type=int, default=200, help="documents (and queries) per language")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", default="benchmarks/results/long-docs")
    a = ap.parse_args(argv)
    from rosberta_onnx import Encoder

    enc = Encoder.load(a.artifact, variant=a.variant, threads=a.threads)
    res: dict = {
        "quality_artifact": a.artifact,
        "variant": a.variant,
        "docs": a.docs,
        "cpu": cpu_facts(),
        "quality": [row for lang in ("en", "ru") for row in quality(enc, lang, a.docs)],
    }
    if a.speed:
        speed = Encoder.load(a.speed, variant=a.speed_variant, threads=a.threads)
        res.update(
            speed_artifact=a.speed, speed_variant=speed.variant, speed_docs=a.speed_docs, cost=cost(speed, a.speed_docs)
        )
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    save(out / "long_docs.json", res)
    save(out / "long_docs.md", table(res, as_run(argv)))
    print(table(res, as_run(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
