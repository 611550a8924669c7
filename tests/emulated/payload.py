"""What the emulated-CPU stage runs on each CPU (native, or under qemu): the torch-free runtime only.

For each artifact: the hardware probe's view of this CPU; every variant re-measured against the artifact's reference
set with the product's own check (``rosberta_onnx.trust.check_variant``, what ``verify`` runs), with the retrieval
and STS figures on a small STS sample; the verdicts remembered for this ISA; then what ``variant="auto"`` picks here
and why. Every vector it computes is saved, in call order, so that the driver can compare this CPU's vectors with
the native CPU's (fp32 parity across ISAs, int8 against native fp32).

    python tests/emulated/payload.py --out DIR [--sts-pairs 16] [--threads 1] ARTIFACT...

Where fp32 is too slow to run on everything (emulated x86 runs onnxruntime's FMA kernels ~35x slower than its integer
ones), ``--fp32-max-tokens`` keeps fp32's own check to the short reference cases and ``--fp32-baseline`` gives the
quantised variants' retrieval/STS figures the native CPU's fp32 vectors of the same texts as their baseline (fp32's
check shows they agree with this CPU's to 1e-5); texts it lacks are computed here.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from rosberta_onnx import Encoder, RosbertaError
from rosberta_onnx.hardware import cpu_info, int8_native
from rosberta_onnx.manifest import VARIANTS, Manifest
from rosberta_onnx.quality import memo
from rosberta_onnx.reference import ReferenceSet, read_reference
from rosberta_onnx.session import engine_available, engine_versions
from rosberta_onnx.trust import check_variant, remember


class Recorder:
    """An ``Embed`` that keeps every vector it computes, keyed by its text and task (so that two CPUs' runs can be
    compared row by row even where they measured different subsets)."""

    def __init__(self, enc: Encoder, batch_size: int = 32) -> None:
        self.enc: Encoder | None = enc
        self.batch_size = batch_size
        self.rows: dict[str, np.ndarray] = {}

    def __call__(self, texts, task):
        assert self.enc is not None, "this variant's session was released"
        vectors = self.enc.encode(list(texts), task=task, batch_size=self.batch_size)
        for text, vec in zip(texts, vectors):
            self.rows[row_key(text, task)] = vec
        return vectors


def row_key(text: str, task: str | None) -> str:
    return hashlib.sha256(json.dumps([task, text], ensure_ascii=False).encode("utf-8", "surrogatepass")).hexdigest()[
        :20
    ]


def baseline_rows(folder: Path) -> dict[str, np.ndarray]:
    """The fp32 vectors another run of this payload saved for an artifact (its output folder), by row key."""
    report = json.loads((folder / "report.json").read_text())
    name, rec = next(iter(report["artifacts"].items()))
    return dict(zip(rec["variants"]["fp32"]["rows"], np.load(folder / f"{name}.npz")["fp32"]))


def with_baseline(rows: dict[str, np.ndarray], fallback) -> Any:
    """An ``Embed`` answering from ``rows`` (by text and task) and computing with ``fallback`` what they lack."""
    known = dict(rows)

    def embed(texts, task):
        missing = [t for t in texts if row_key(t, task) not in known]
        if missing:
            known.update((row_key(t, task), v) for t, v in zip(missing, fallback(missing, task)))
        return np.stack([known[row_key(t, task)] for t in texts])

    return embed


def shorter(
    reference: ReferenceSet, counts: np.ndarray, max_tokens: int, real_texts: int | None = None
) -> ReferenceSet:
    """The reference cases of at most ``max_tokens`` tokens (emulated x86 runs a 512-token fp32 case for minutes),
    and of the real sentences (``sts[i]``) only the first ``real_texts``: the edge cases are kept whole."""
    real = [i for i, name in enumerate(reference.names) if name.startswith("sts[")]
    dropped = set(real[real_texts:]) if real_texts is not None else set()
    keep = [i for i, n in enumerate(counts) if n <= max_tokens and i not in dropped]
    return replace(
        reference,
        names=tuple(reference.names[i] for i in keep),
        texts=tuple(reference.texts[i] for i in keep),
        vectors=reference.vectors[keep],
    )


def measure_artifact(
    folder: Path,
    out: Path,
    *,
    sts_pairs: int,
    threads: int,
    variants_asked: list[str] | None,
    max_tokens: int | None,
    autotune: bool,
    real_texts: int | None = None,
    fp32_max_tokens: int | None = None,
    baseline: dict[str, np.ndarray] | None = None,
) -> dict:
    manifest = Manifest.read(folder)
    reference = read_reference(folder, manifest)
    isa, versions = cpu_info().isa, engine_versions()
    names = [v for v in VARIANTS if v in manifest.variants and engine_available(manifest.variants[v])]
    names = [v for v in names if v != "fp16"]  # a GPU variant: the CPU runs it by casting, nothing to learn here
    if variants_asked:
        names = ["fp32"] + [v for v in names if v in variants_asked and v != "fp32"]

    def load(v: str, **kw) -> Encoder:
        return Encoder.load(folder, variant=v, threads=threads, **kw)

    fp32_enc = load("fp32", autotune=False)
    fp32_rec = Recorder(fp32_enc, batch_size=1 if fp32_max_tokens else 32)  # short cases: no padding
    fp32_here = memo(fp32_rec)
    fp32 = memo(with_baseline(baseline, fp32_here)) if baseline else fp32_here
    counts = fp32_enc.count_tokens(list(reference.texts))
    fp32_reference = shorter(reference, counts, fp32_max_tokens, real_texts) if fp32_max_tokens else None
    if max_tokens:
        reference = shorter(reference, counts, max_tokens, real_texts)
    fp32_reference = fp32_reference or reference
    variants: dict[str, dict] = {}
    arrays: dict[str, np.ndarray] = {}
    recorders: dict[str, Recorder] = {}
    for v in names:
        t0 = time.perf_counter()
        rec = fp32_rec if v == "fp32" else recorders.setdefault(v, Recorder(load(v, autotune=False)))
        if v == "fp32":  # computed here, never the baseline's vectors
            check = check_variant(manifest, v, fp32_here, fp32_reference)
        else:
            check = check_variant(manifest, v, rec, reference, fp32=fp32, sts_pairs=sts_pairs)
        if rec is not fp32_rec:
            rec.enc = None  # keep the vectors, not the session
        if not check.error:
            remember(folder, manifest, check, isa=isa, engine_versions=versions)
        variants[v] = {
            "passed": check.passed,
            "error": check.error,
            "failures": list(check.failures),
            "judged": {k: check.thresholds[k] for k in check.judged if k in check.thresholds},
            "cosines": check.cosines,
            "sts": check.sts,
            "seconds": round(time.perf_counter() - t0, 1),
        }
    for v in variants:  # after every check: fp32's recorder also holds the STS texts the others were judged on
        rows = (fp32_rec if v == "fp32" else recorders[v]).rows
        variants[v]["finite"] = all(bool(np.isfinite(vec).all()) for vec in rows.values())
        variants[v]["rows"] = list(rows)
        judged_on = fp32_reference if v == "fp32" else reference
        variants[v]["reference_rows"] = [row_key(t, None) for t in judged_on.texts]
        arrays[v] = np.stack(list(rows.values())) if rows else np.zeros((0, 0), np.float32)
    t0 = time.perf_counter()
    try:
        # the verdicts above are remembered: auto reads them (and with autotune, times what is kept)
        sel = load("auto", autotune=autotune).selection
        auto: dict[str, Any] = {
            "variant": sel.variant,
            "reason": sel.reason,
            "candidates": list(sel.candidates),
            "trust": dict(sel.trust),
            "timings_ms": dict(sel.timings_ms),
        }
    except RosbertaError as exc:
        auto = {"variant": None, "reason": f"auto failed: {exc}", "candidates": [], "trust": {}, "timings_ms": {}}
    auto["seconds"] = round(time.perf_counter() - t0, 1)
    np.savez(out / f"{folder.name}.npz", allow_pickle=False, **arrays)
    return {
        "variants": variants,
        "auto": auto,
        "export_isa": {v: manifest.variants[v].isa for v in names},
        "gate_passed": [v for v in names if manifest.variants[v].gate_passed],
        "reference_cases": list(reference.names),
        "sts_baseline": "the native CPU's fp32 vectors" if baseline else "fp32 here",
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("artifacts", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--sts-pairs", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--variants", help="comma-separated: only these (and fp32, the baseline); default every one")
    ap.add_argument("--max-tokens", type=int, help="only the reference cases of at most this many tokens")
    ap.add_argument("--real-texts", type=int, help="with --max-tokens: of the real sentences, only the first N")
    ap.add_argument(
        "--no-autotune", action="store_true", help="auto by the rules and remembered verdicts, timing nothing"
    )
    ap.add_argument("--fp32-max-tokens", type=int, help="fp32's own check only on reference cases this short")
    ap.add_argument(
        "--fp32-baseline",
        type=Path,
        help="the native run's output folder for this artifact: its fp32 vectors are the STS figures' baseline",
    )
    args = ap.parse_args(argv)
    if args.fp32_baseline and len(args.artifacts) != 1:
        ap.error("--fp32-baseline holds one artifact's vectors: pass that one artifact")
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    info = cpu_info()
    report: dict = {
        "probe": {
            "machine": info.machine,
            "isa": info.isa,
            "cpu": info.describe(),
            "int8_native": int8_native(info.isa),
            "notes": list(info.notes),
        },
        "python": sys.version.split()[0],
        "engines": engine_versions(),
        "artifacts": {},
    }
    for folder in args.artifacts:
        report["artifacts"][folder.name] = measure_artifact(
            folder,
            args.out,
            sts_pairs=args.sts_pairs,
            threads=args.threads,
            variants_asked=args.variants.split(",") if args.variants else None,
            max_tokens=args.max_tokens,
            autotune=not args.no_autotune,
            real_texts=args.real_texts,
            fp32_max_tokens=args.fp32_max_tokens,
            baseline=baseline_rows(args.fp32_baseline) if args.fp32_baseline else None,
        )
    report["seconds"] = round(time.perf_counter() - t0, 1)
    (args.out / "report.json").write_text(json.dumps(report, indent=1, ensure_ascii=False, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
