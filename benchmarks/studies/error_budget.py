"""Where an int8 variant's error comes from, measured the way the gate measures retrieval.

    python -m benchmarks.studies.error_budget ARTIFACT --reference CHECKPOINT [--queries 300] [--lang en]

STS dev sentence1 (the first ``--queries``) as queries over every distinct sentence2 of the gate's pairs, each
system against the artifact's fp32 variant: top-10 overlap, median score error and mean ``1 - cos``.

- engines: the shipped ``int8`` and ``int8-openvino`` as the runtime loads them; then ``int8-openvino``'s file
  through OpenVINO with other options: f32 elsewhere, activation groups of 32, and run-time activation quantisation
  off (its int8 weights alone: the weights' share of the error);
- activations by MatMul type (torch, the checkpoint's float weights): each MatMul input quantised to u8 with one
  scale per token (as the int8 recipe's rows; no smoothing) for all MatMuls, then one type at a time -- Q/K/V,
  attention output, FFN-up, FFN-down -- with its own torch fp32 run as the reference.

On the random stand-in this says why int8 misses its 1500-pair retrieval criterion (README, int8); on trained
weights, which MatMuls to work on. Writes ``error_budget.json`` and ``.md`` under ``--out``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from ..harness.machine import cpu_facts
from ..harness.results import save
from ..harness.runner import as_run, end_like_ctrl_c_on_sigterm

ROLES = {"qkv": "Q/K/V", "attn-out": "attention output", "ffn-up": "FFN-up", "ffn-down": "FFN-down"}
OPENVINO_RUNS = (  # (label, engine options) for int8-openvino's file
    ("groups of 256, f32 elsewhere", {"DYNAMIC_QUANTIZATION_GROUP_SIZE": 256, "INFERENCE_PRECISION_HINT": "f32"}),
    ("groups of 32, f32 elsewhere", {"DYNAMIC_QUANTIZATION_GROUP_SIZE": 32, "INFERENCE_PRECISION_HINT": "f32"}),
    (
        "activations in float (int8 weights only)",
        {"DYNAMIC_QUANTIZATION_GROUP_SIZE": 0, "INFERENCE_PRECISION_HINT": "f32"},
    ),
)


def gate_texts(lang: str, queries: int, pairs: int) -> tuple[list[str], list[str]]:
    """(queries, documents) as the gate builds them from the first ``pairs`` STS dev pairs; the first ``queries``."""
    from rosberta_export.corpus import sts_pairs
    from rosberta_export.gate import retrieval_texts

    q, docs = retrieval_texts(sts_pairs(lang, "dev")[:pairs])
    return q[:queries], docs


def figures(ref: tuple[np.ndarray, np.ndarray], got: tuple[np.ndarray, np.ndarray]) -> dict:
    """Top-10 overlap, median |score error| and mean 1 - cos of ``got`` (query, document vectors) against ``ref``."""
    from rosberta_export.gate import top10_overlap

    cos = np.concatenate([(r.astype(np.float64) * g).sum(1) for r, g in zip(ref, got)])
    return {
        "top10_overlap": top10_overlap(ref, got),
        "score_error_median": float(np.median(np.abs(got[0] @ got[1].T - ref[0] @ ref[1].T))),
        "one_minus_cos_mean": float(1.0 - cos.mean()),
    }


def _encode(enc, queries, docs):
    t = time.perf_counter()
    got = enc.encode(queries, task="search_query"), enc.encode(docs, task="search_document")
    return got, time.perf_counter() - t


def _engine_rows(artifact: Path, queries, docs, threads: int) -> tuple[dict, list[dict]]:
    from rosberta_onnx import Encoder
    from rosberta_onnx.manifest import Manifest
    from rosberta_onnx.openvino_engine import OpenVinoSession, openvino_available

    ref, _ = _encode(Encoder.load(artifact, variant="fp32", threads=threads, autotune=False), queries, docs)
    s = -np.sort(-(ref[0] @ ref[1].T), 1)
    gap = float(np.median(s[:, 9] - s[:, 10])) if s.shape[1] > 10 else float("nan")
    rows = []
    variants = Manifest.read(artifact).variants
    for v in ("int8", "int8-openvino"):
        if v not in variants or (v == "int8-openvino" and not openvino_available()):
            continue
        enc = Encoder.load(artifact, variant=v, threads=threads, autotune=False)
        got, secs = _encode(enc, queries, docs)
        rows.append({"system": f"`{v}` as shipped", **figures(ref, got), "seconds": secs})
        if v == "int8-openvino":
            for label, options in OPENVINO_RUNS:
                enc._session = OpenVinoSession(
                    artifact / variants[v].file, threads=threads, options=options, variant=v, streams=1
                )
                got, secs = _encode(enc, queries, docs)
                rows.append({"system": f"`{v}`'s file, {label}", **figures(ref, got), "seconds": secs})
    return {"neighbour_gap_median": gap}, rows


def per_token_u8(x):
    """``x`` (torch, ``(..., k)``) through u8 with one scale and zero point per row, the range holding 0."""
    import torch

    lo, hi = x.amin(-1, keepdim=True).clamp(max=0), x.amax(-1, keepdim=True).clamp(min=0)
    scale = ((hi - lo) / 255).clamp(min=1e-12)
    zero = torch.round(-lo / scale)
    return (torch.clamp(torch.round(x / scale) + zero, 0, 255) - zero) * scale


def _role(name: str) -> str | None:
    """The MatMul type of a BERT/RoBERTa ``nn.Linear`` from its module path (transformers' names)."""
    if name.endswith(("attention.self.query", "attention.self.key", "attention.self.value")):
        return "qkv"
    if name.endswith("attention.output.dense"):
        return "attn-out"
    if name.endswith("intermediate.dense"):
        return "ffn-up"
    if name.endswith("output.dense"):
        return "ffn-down"
    return None


def _torch_rows(checkpoint: str, artifact: Path, queries, docs, threads: int) -> list[dict]:
    import torch

    from rosberta_export.reference import Reference
    from rosberta_onnx.manifest import Manifest
    from rosberta_onnx.prompts import apply_prompt

    facts = Manifest.read(artifact).model
    ref = Reference(
        checkpoint, pooling=facts.pooling, normalize=facts.normalize, max_length=facts.max_length, threads=threads
    )
    active: set[str] = set()

    def hook(module, args):
        return (per_token_u8(args[0]),) if module.rosberta_role in active else None

    hooked: dict[str, int] = {}
    for name, module in ref.model.named_modules():
        if isinstance(module, torch.nn.Linear) and _role(name):
            module.rosberta_role = _role(name)
            module.register_forward_pre_hook(hook)
            hooked[module.rosberta_role] = hooked.get(module.rosberta_role, 0) + 1
    q = apply_prompt(list(queries), "search_query", facts.prompts)
    d = apply_prompt(list(docs), "search_document", facts.prompts)
    base = ref.embed(q, batch_size=32), ref.embed(d, batch_size=32)
    rows = []
    for roles in [tuple(ROLES)] + [(r,) for r in ROLES]:
        active.clear()
        active.update(roles)
        t = time.perf_counter()
        got = ref.embed(q, batch_size=32), ref.embed(d, batch_size=32)
        label = "every MatMul" if len(roles) > 1 else ROLES[roles[0]]
        rows.append(
            {
                "system": f"activations per token u8: {label} ({sum(hooked.get(r, 0) for r in roles)} MatMuls)",
                **figures(base, got),
                "seconds": time.perf_counter() - t,
            }
        )
    return rows


def _table(res: dict, command: str) -> str:
    head = (
        f"int8 error budget on `{res['artifact']}` ({res['lang']}, {res['queries']} queries over {res['docs']} "
        f"documents; median score gap between the 10th and 11th neighbour in fp32: "
        f"{res['neighbour_gap_median']:.2e}), on {res['cpu']['description']}. "
        f"Reproduce: `python -m benchmarks.studies.error_budget {command}`\n\n"
    )
    lines = [
        "| system (against fp32) | top-10 overlap | median score error | 1 - cos mean | s |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in res["rows"]:
        lines.append(
            f"| {r['system']} | {r['top10_overlap']:.3f} | {r['score_error_median']:.2e} | "
            f"{r['one_minus_cos_mean']:.2e} | {r['seconds']:.0f} |"
        )
    return (
        head
        + "\n".join(lines)
        + "\n\nThe torch rows use the checkpoint's float weights and their own torch fp32 run as the reference.\n"
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("artifact", help="an export with fp32 and int8 variants (e.g. models/standin-full-onnx)")
    ap.add_argument("--reference", required=True, help="the checkpoint the artifact was exported from")
    ap.add_argument("--lang", default="en", choices=("en", "ru"))
    ap.add_argument("--queries", type=int, default=300, help="the first N gate queries (default 300)")
    ap.add_argument("--pairs", type=int, default=1500, help="documents from the first N dev pairs (the gate's 1500)")
    ap.add_argument("--no-torch", action="store_true", help="skip the per-type rows (torch)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="benchmarks/results/error-budget")
    a = ap.parse_args(argv)
    end_like_ctrl_c_on_sigterm()
    artifact = Path(a.artifact)
    if not (artifact / "manifest.json").exists():
        ap.error(f"{a.artifact!r} has no manifest.json: pass an export folder (rosberta-onnx export CHECKPOINT -o DIR)")
    if a.queries < 1 or a.pairs < 1:
        ap.error(f"--queries {a.queries} / --pairs {a.pairs}: both must be at least 1")
    queries, docs = gate_texts(a.lang, a.queries, a.pairs)
    head, rows = _engine_rows(artifact, queries, docs, a.threads)
    if not a.no_torch:
        rows += _torch_rows(a.reference, artifact, queries, docs, a.threads)
    res = {
        "artifact": str(artifact),
        "lang": a.lang,
        "queries": len(queries),
        "docs": len(docs),
        **head,
        "rows": rows,
        "cpu": cpu_facts(),
    }
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    save(out / "error_budget.json", res)
    save(out / "error_budget.md", _table(res, as_run(argv)))
    print(_table(res, as_run(argv)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
