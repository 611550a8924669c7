"""The int8 gate applied to every system: how faithful each peer's quantised model is, judged by the figures and
thresholds this project's own int8 variants must pass.

    python -m benchmarks.studies.peer_fidelity ARTIFACT [--reference CHECKPOINT] [--systems a,b,...]
        [--texts-per-lang 500] [--gate-pairs 1500] [--out benchmarks/results/peer-fidelity-<artifact>]

For each system (default: our ``auto``, our int8 variants, CTranslate2 int8, llama.cpp f16/q8_0/Q4_K_M), against
the PyTorch fp32 reference:

- cosine min/mean over ``--texts-per-lang`` STS dev sentences in each of Russian and English;
- the gate's retrieval and STS figures on the first ``--gate-pairs`` dev pairs per language: mean top-10 overlap
  of the search results, and the STS Spearman against the human scores beside torch's own;
- the verdict by :data:`rosberta_export.gate.INT8_GATE`. On a random-weight stand-in only the cosine criteria are
  judged (the others are recorded), as the exporter's gate does; on trained weights (MiniLM, the real model) all.

Task prefixes come from the artifact's manifest and are prepended to the text for every system alike.
Writes ``peer_fidelity.json`` and ``peer_fidelity.md`` under ``--out``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from ..harness.base import Context, Skip, log_stderr
from ..harness.machine import cpu_facts
from ..harness.results import save
from ..harness.runner import as_run, end_like_ctrl_c_on_sigterm

DEFAULT_SYSTEMS = (
    "rosberta-auto",
    "rosberta-int8",
    "rosberta-int8-avx2",
    "rosberta-int8-openvino",
    "ct2-int8",
    "llama-f16",
    "llama-q8_0",
    "llama-q4_k_m",
)


def _sentences(lang: str, n: int) -> list[str]:
    from rosberta_export.corpus import sts_pairs

    seen: dict[str, None] = {}
    for p in sts_pairs(lang, "dev"):
        for s in (p.sentence1, p.sentence2):
            seen.setdefault(s, None)
    return list(seen)[:n]


def _embedder(encode, prompts):
    """(texts, task) -> vectors, the task's prefix prepended to each text."""
    from rosberta_onnx.quality import memo

    def embed(texts, task):
        prefix = prompts.get(task, "") if task else ""
        return np.asarray(encode([prefix + t for t in texts]), dtype=np.float32)

    return memo(embed)


def _judge(name: str, ctx: Context, torch_embed, sentences: dict[str, list[str]], gate_pairs: int) -> dict:
    from rosberta_export.gate import gate_figures, gate_record
    from rosberta_onnx.quality import cosine_figures

    from ..systems import make_system

    system = make_system(name, ctx)
    try:
        system.build()
        system.prepare()
        system.load()
        embed = _embedder(lambda texts: system.encode(texts, own_batching=True), ctx.facts.prompts)
        t0 = time.perf_counter()
        per_lang = {}
        for lang, texts in sentences.items():
            cos = cosine_figures(torch_embed(texts, None), embed(texts, None), texts)
            per_lang[lang] = {k: cos[k] for k in ("n", "cos_min", "cos_mean", "worst_case")}
        worst = min(per_lang.values(), key=lambda c: c["cos_min"])
        parity = {
            "cos_min": worst["cos_min"],
            "cos_mean": float(np.mean([c["cos_mean"] for c in per_lang.values()])),
            "worst_case": worst["worst_case"],
        }
        figures = gate_figures(torch_embed, embed, prompts=ctx.facts.prompts, pairs_per_lang=gate_pairs)
        record = gate_record(parity, figures, random_weights=bool(ctx.manifest.source.get("stand_in")))
        return {
            "name": name,
            "label": system.label,
            "status": "ok",
            "cosine": per_lang,
            "gate": record,
            "config": system.config,
            "notes": system.notes,
            "seconds": round(time.perf_counter() - t0, 1),
        }
    except Skip as exc:
        return {"name": name, "label": system.label, "status": "skipped", "reason": str(exc)}
    finally:
        system.close()


def _row(r: dict) -> str:
    if r["status"] != "ok":
        return f"| {r['label']} | – | – | – | – | skipped: {r['reason']} |"
    c, g = r["cosine"], r["gate"]
    f = g["figures"]
    langs = list(c)
    cos = " / ".join(f"{c[lang]['cos_min']:.5f}" for lang in langs)
    mean = " / ".join(f"{c[lang]['cos_mean']:.5f}" for lang in langs)
    top = " / ".join(f"{f['top10_overlap'][lang]:.3f}" for lang in langs)
    rho = " / ".join(f"{f['spearman_int8'][lang] - f['spearman_fp32'][lang]:+.4f}" for lang in langs)
    if g["passed"]:
        verdict = "**pass**" + (f" (cosine only; {', '.join(g['recorded'])} recorded)" if g["recorded"] else "")
    else:
        verdict = "**fail**: " + "; ".join(g["failures"])
    file_mb = r["config"].get("file_mb")
    label = f"{r['label']} ({file_mb:.0f} MB)" if file_mb else r["label"]
    return f"| {label} | {cos} | {mean} | {top} | {rho} | {verdict} |"


def report(res: dict) -> str:
    langs = " / ".join(res["languages"])
    lines = [
        f"# Peer fidelity: the int8 gate applied to every system ({res['artifact']})",
        "",
        f"- CPU: {res['cpu']['description']}; {res['threads']} threads",
        f"- model: {res['model']}",
        f"- against PyTorch fp32; cosine over {res['texts_per_lang']} STS dev sentences per language; retrieval "
        f"top-10 overlap and STS Spearman Δ on {res['gate_pairs']} dev pairs per language; thresholds "
        f"{res['thresholds']}",
        f"- command: `python -m benchmarks.studies.peer_fidelity {res['command']}`",
        "",
        f"| system | cosine min ({langs}) | cosine mean | top-10 overlap | Spearman Δ | gate |",
        "|---|---:|---:|---:|---:|---|",
        *(_row(r) for r in res["systems"]),
        "",
        "## Systems",
        "",
    ]
    for r in res["systems"]:
        if r["status"] == "ok":
            cfg = ", ".join(f"{k}={v}" for k, v in r["config"].items())
            lines.append(f"- **{r['label']}** (`{r['name']}`): {cfg}")
            lines += [f"  - {n}" for n in r["notes"]]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("artifact")
    ap.add_argument("--reference", default=None, help="the checkpoint the artifact was exported from")
    ap.add_argument("--systems", default=",".join(DEFAULT_SYSTEMS))
    ap.add_argument("--texts-per-lang", type=int, default=500)
    ap.add_argument("--gate-pairs", type=int, default=1500)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    end_like_ctrl_c_on_sigterm()
    from rosberta_export.corpus import LANGS
    from rosberta_export.gate import INT8_GATE

    from ..systems.peers import _reference

    ctx = Context(a.artifact, reference=a.reference, threads=a.threads, log=log_stderr)
    try:
        ctx.need_torch()
        ref, _ = _reference(ctx)
        torch_embed = _embedder(lambda texts: ref.embed(texts, batch_size=32), ctx.facts.prompts)
        sentences = {lang: _sentences(lang, a.texts_per_lang) for lang in LANGS}
        systems = []
        for name in (n.strip() for n in a.systems.split(",") if n.strip()):
            log_stderr(f"{name}: judging")
            systems.append(_judge(name, ctx, torch_embed, sentences, a.gate_pairs))
            r = systems[-1]
            log_stderr(f"{name}: {r['status']}" + (f" ({r['reason']})" if r["status"] != "ok" else ""))
        stand_in = bool(ctx.manifest.source.get("stand_in"))
        res = {
            "artifact": ctx.artifact.name,
            "model": f"{ctx.manifest.source.get('model')}"
            + (" (STAND-IN with random weights: only the cosine criteria are judged)" if stand_in else ""),
            "cpu": cpu_facts(),
            "threads": a.threads,
            "languages": list(LANGS),
            "texts_per_lang": a.texts_per_lang,
            "gate_pairs": a.gate_pairs,
            "thresholds": dict(INT8_GATE),
            "command": as_run(argv),
            "systems": systems,
        }
    finally:
        ctx.close()
    out = Path(a.out or f"benchmarks/results/peer-fidelity-{ctx.artifact.name}")
    save(out / "peer_fidelity.json", res)
    text = report(res)
    (out / "peer_fidelity.md").write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
