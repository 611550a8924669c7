"""Alternating rounds: every system runs each workload once per round (A B C A B C …) in one process.

Timings on shared machines swing by up to 2× between runs, so a ratio is only taken between systems
measured in the same round, next to each other; the reported ratio is the median of those per-round
ratios, and each time is the median over rounds after an untimed warm-up.
"""

from __future__ import annotations

import gc
import shlex
import statistics
import sys
import time
import traceback

import numpy as np

from rosberta_onnx.interrupt import end_like_ctrl_c_on_sigterm

from .base import Skip, System
from .workloads import Workload

__all__ = [
    "alternate",
    "fixed_batch",
    "as_run",
    "end_like_ctrl_c_on_sigterm",
    "load_systems",
    "run_workloads",
    "quality",
]


def alternate(fns: dict, rounds: int) -> dict[str, list[float]]:
    """Seconds per call of each ``fns`` callable, ``rounds`` times, in turn (A B C A B C …): the smaller
    benches' version of :func:`run_workloads`, for callables that are already warmed up."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return times


def as_run(argv: list[str] | None) -> str:
    """A bench's arguments as typed (flags included), for its table's "Reproduce" line."""
    return " ".join(shlex.quote(x) for x in (sys.argv[1:] if argv is None else argv))


def fixed_batch(model, batch: int, tokens: int):
    """The small benches' fixed-shape input -- ``batch`` texts of exactly ``tokens`` tokens (``<s> 5 … 5 </s>``),
    no padding -- as ONNX feeds, and a callable that runs the torch ``model`` on it: their torch fp32 baseline."""
    import torch

    ids = np.full((batch, tokens), 5, dtype=np.int64)
    ids[:, 0], ids[:, -1] = 0, 2
    feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
    tids = torch.from_numpy(ids)

    def run_torch():
        with torch.inference_mode():
            model(input_ids=tids, attention_mask=torch.ones_like(tids))

    return feeds, run_torch


def load_systems(systems: list[System], log) -> dict[str, dict]:
    """prepare() + load() each system; returns {name: status record}. Failed/skipped ones stay listed."""
    status: dict[str, dict] = {}
    for s in systems:
        try:
            s.prepare()
        except Skip as exc:
            status[s.name] = {"status": "skipped", "reason": str(exc)}
            log(f"{s.name}: skipped — {exc}")
            continue
        except Exception as exc:  # an installed peer that breaks is a finding, reported as failed
            status[s.name] = {"status": "failed", "reason": f"prepare: {type(exc).__name__}: {exc}"}
            log(f"{s.name}: FAILED to prepare — {exc}")
            continue
        try:
            s.load()
            status[s.name] = {"status": "ok", "reason": ""}
            log(f"{s.name}: loaded in {s.load_s:.2f}s")
        except Skip as exc:
            status[s.name] = {"status": "skipped", "reason": str(exc)}
            log(f"{s.name}: skipped — {exc}")
        except Exception as exc:
            status[s.name] = {"status": "failed", "reason": f"load: {type(exc).__name__}: {exc}"}
            log(f"{s.name}: FAILED to load — {exc}\n{traceback.format_exc(limit=3)}")
    return status


def _pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q))


def _summarise(w: Workload, per_round: dict[str, list[list[float]]], baseline: str) -> dict[str, dict]:
    out = {}
    base = [statistics.median(r) for r in per_round.get(baseline, [])]
    for name, rounds in per_round.items():
        med = [statistics.median(r) for r in rounds]
        ratios = [b / m for b, m in zip(base, med) if m > 0] if base else []
        t = statistics.median(med)
        rec = {
            "rounds": len(rounds),
            "time_s_median": t,
            "time_s_rounds": med,
            "ratio_median": statistics.median(ratios) if ratios else None,
            "ratio_min": min(ratios) if ratios else None,
            "ratio_max": max(ratios) if ratios else None,
        }
        if w.kind == "latency":
            flat = [x for r in rounds for x in r]
            rec.update(
                samples=len(flat), p50_ms=_pct(flat, 50) * 1e3, p95_ms=_pct(flat, 95) * 1e3, p99_ms=_pct(flat, 99) * 1e3
            )
        elif w.kind == "corpus":
            rec.update(texts_per_s=w.batch / t, tokens_per_s=w.tokens / t)
        elif w.kind == "scaling":
            rec.update(ms_per_seq=t * 1e3 / w.batch)
        else:
            rec.update(seq_per_s=w.batch / t)
        out[name] = rec
    return out


def run_workloads(
    systems: list[System],
    workloads: list[Workload],
    status: dict[str, dict],
    *,
    baseline: str,
    warmup: int,
    gap_s: float,
    log,
) -> tuple[dict, dict[str, np.ndarray]]:
    """Run every workload over the loaded systems. Returns (results by workload, corpus embeddings by system)."""
    active = [s for s in systems if status[s.name]["status"] == "ok"]
    results: dict[str, dict] = {}
    corpus_vecs: dict[str, np.ndarray] = {}

    def fail(s: System, where: str, exc: Exception) -> None:
        status[s.name] = {"status": "failed", "reason": f"{where}: {type(exc).__name__}: {exc}"}
        log(f"{s.name}: FAILED in {where} — {exc}")
        active.remove(s)

    for w in workloads:
        t_start = time.perf_counter()
        gc.collect()
        texts = list(w.texts)
        n_warm = warmup + (2 if w.kind == "latency" else 0)
        for s in list(active):
            try:
                for _ in range(n_warm):
                    vecs = s.encode(texts, own_batching=w.own_batching)
                vecs = np.asarray(vecs)
                if vecs.shape != (len(texts), s.ctx.facts.dim):
                    raise ValueError(f"returned shape {vecs.shape}, expected {(len(texts), s.ctx.facts.dim)}")
                if w.kind == "corpus":
                    corpus_vecs[s.name] = vecs.astype(np.float32)
            except Exception as exc:
                fail(s, f"{w.name} warm-up", exc)
        per_round: dict[str, list[list[float]]] = {s.name: [] for s in active}
        for r in range(w.rounds):
            for s in list(active):
                samples = []
                try:
                    for _ in range(w.calls):
                        s.own_time_s = None
                        t0 = time.perf_counter()
                        s.encode(texts, own_batching=w.own_batching)
                        wall = time.perf_counter() - t0
                        samples.append(s.own_time_s if s.own_time_s is not None else wall)
                except Exception as exc:
                    fail(s, f"{w.name} round {r}", exc)
                    per_round.pop(s.name, None)
                    continue
                per_round[s.name].append(samples)
                if gap_s:
                    time.sleep(gap_s)  # let the previous system's thread pool go idle before the next one
        per_round = {k: v for k, v in per_round.items() if len(v) == w.rounds}
        if not per_round:
            continue
        base = baseline if baseline in per_round else next(iter(per_round))
        results[w.name] = {
            "kind": w.kind,
            "label": w.label,
            "batch": w.batch,
            "tokens": w.tokens,
            "rounds": w.rounds,
            "calls_per_round": w.calls,
            "warmup_calls": n_warm,
            "baseline": base,
            "systems": _summarise(w, per_round, base),
        }
        log(f"{w.name}: {w.rounds} round(s) over {len(per_round)} systems in {time.perf_counter() - t_start:.1f}s")
    return results, corpus_vecs


def quality(corpus_vecs: dict[str, np.ndarray], baseline: str) -> dict[str, dict]:
    """Cosine of each system's corpus embeddings against the baseline's, per text: min and mean."""
    if baseline not in corpus_vecs:
        return {}
    ref = corpus_vecs[baseline].astype(np.float64)
    ref /= np.maximum(np.linalg.norm(ref, axis=1, keepdims=True), 1e-30)
    out = {}
    for name, v in corpus_vecs.items():
        v = v.astype(np.float64)
        v /= np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-30)
        cos = (ref * v).sum(1)
        out[name] = {
            "against": baseline,
            "n": int(len(cos)),
            "cos_min": float(cos.min()),
            "cos_mean": float(cos.mean()),
        }
    return out
