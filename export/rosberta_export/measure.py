"""Measuring what was exported: every variant against the PyTorch reference (parity), then each quantised variant
through the quality gate (retrieval and STS against fp32). The figures go into the variants' records."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from rosberta_onnx import Encoder, HardwareWarning, prepare_texts
from rosberta_onnx.manifest import GATED_VARIANTS, Manifest, ModelFacts, VariantRecord
from rosberta_onnx.openvino_engine import openvino_version
from rosberta_onnx.quality import memo
from rosberta_onnx.reference import write_reference
from rosberta_onnx.report import gate_line

from .corpus import LANGS, sts_pairs
from .gate import Embed, gate_figures, gate_record
from .int4 import INT4_SETTINGS
from .options import openvino_weights
from .parity import THRESHOLDS, compare, failures, parity_cases
from .source import Source
from .stages import Progress as Step

__all__ = ["measure", "memo"]

# STS dev pairs per language shipped in the reference set, for `verify --sts` (~25 KB of text)
REFERENCE_STS_PAIRS = 64


def _reference_vectors(ref, texts: list[str], lengths: list[int], dim: int) -> np.ndarray:
    """Short texts in padded batches of mixed lengths; the max-length cases in a batch of their own, so they don't pad
    fifteen short rows to 512 tokens (minutes on the full-size model, same figures)."""
    long_ix = [i for i, c in enumerate(lengths) if c > 128]
    short_ix = [i for i, c in enumerate(lengths) if c <= 128]
    vecs = np.empty((len(texts), dim), dtype=np.float32)
    vecs[short_ix] = ref.embed([texts[i] for i in short_ix], batch_size=16)
    if long_ix:
        vecs[long_ix] = ref.embed([texts[i] for i in long_ix], batch_size=4)
    return vecs


def _cases(folder: Path, variant: str, n_real: int, max_length: int) -> tuple[list[str], list[str], list[list[int]]]:
    """The parity cases' names, texts and token ids, tokenised by the runtime (whose session is freed on return:
    the full-size fp32 one holds 1.4 GB)."""
    counter = Encoder.load(folder, variant=variant, verify=False, allow_cpu_fp16=True)
    cases = parity_cases(n_real, max_length=max_length, count_tokens=lambda t: counter.count_tokens([t])[0])
    texts = [c.text for c in cases]
    return [c.name for c in cases], texts, counter.tokenize(texts)


def _parity(
    folder: Path,
    ref,
    cases: tuple[list[str], list[str], list[list[int]]],
    records: dict[str, VariantRecord],
    facts: ModelFacts,
    n_real: int,
    step: Step,
) -> tuple[Callable[[str], tuple[VariantRecord, list[str], Encoder]], dict]:
    """The reference vectors of the parity cases (PyTorch) and the reference set written from them (so that
    ``verify`` on any CPU measures exactly what the export measured here); then a function that loads one variant,
    measures it against those vectors and returns its record with the parity figures, its failures and the encoder
    (which the gate uses again: one load, one OpenVINO compile, per variant)."""
    names, texts, ours = cases
    tok_mismatch = [n for n, a, b in zip(names, ours, ref.tokenize(texts)) if list(a) != list(b)]
    step(f"  reference embeddings for {len(texts)} texts ({n_real} real RU/EN sentences + edge cases)")
    ref_vecs = _reference_vectors(ref, texts, [len(x) for x in ours], facts.dim)
    reference = write_reference(
        folder,
        names,
        texts,
        ref_vecs,
        {lang: sts_pairs(lang, "dev")[:REFERENCE_STS_PAIRS] for lang in LANGS},
        made_by=f"PyTorch fp32 (transformers {_version('transformers')}, torch {_version('torch')})",
    )

    def parity(v: str) -> tuple[VariantRecord, list[str], Encoder]:
        with warnings.catch_warnings(record=True) as seen:
            # int8 on a CPU without VNNI: measured here like any variant; the record names this ISA and the gate
            # judges what it gives, so the runtime's advice becomes a line of the log
            warnings.simplefilter("always", HardwareWarning)
            enc = Encoder.load(folder, variant=v, verify=False, allow_cpu_fp16=True)
        for w in seen:
            if issubclass(w.category, HardwareWarning):
                step(f"  NOTE ({v}): {w.message}")
            else:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        fig = compare(ref_vecs, enc.encode(texts, batch_size=16), names)
        fig["tokenizer_mismatches"] = tok_mismatch
        f = failures(fig, THRESHOLDS[v]) + [f"tokenizer ids differ from transformers for: {tok_mismatch}"] * bool(
            tok_mismatch
        )
        fig.update(thresholds=THRESHOLDS[v], passed=not f, failures=f)
        step(
            f"  {v}: cosine min {fig['cos_min']:.6f} mean {fig['cos_mean']:.6f} max abs {fig['max_abs']:.2e}"
            + ("" if not f else f" — {len(f)} failing case(s)")
        )
        return VariantRecord(**{**records[v].__dict__, "parity": fig}), f, enc

    return parity, reference


def _version(package: str) -> str:
    import importlib.metadata as md

    try:
        return md.version(package)
    except md.PackageNotFoundError:
        return "?"


def _gate_recipe(variant: str, int8_recipe: str) -> str:
    """The short name of how ``variant`` was quantised, kept with its gate verdict."""
    if variant == "int4":
        s = INT4_SETTINGS
        return f"int4-{'gptq' if s.gptq else 'rtn'}-b{s.block}-acc{s.accuracy_level}"
    if variant == "int8-avx2":
        return int8_recipe + "-u8-weights"
    return int8_recipe if variant == "int8" else "openvino-" + openvino_weights(int8_recipe)


def _identical(a: Encoder, b: Encoder, pairs: int) -> dict | None:
    """How far ``b``'s vectors are from ``a``'s on the gate's first STS sentences (both languages, every task the gate
    uses); None unless every component agrees within 1e-6, i.e. the two compute the same function here."""
    texts = [s for lang in LANGS for p in sts_pairs(lang, "dev")[:pairs] for s in (p.sentence1, p.sentence2)]
    d = max(
        float(np.abs(a.encode(texts, task=task) - b.encode(texts, task=task)).max())
        for task in (None, *(t for t in ("classification", "search_query") if t in a.facts.prompts))
    )
    return {"texts": len(texts), "max_abs": d} if d <= 1e-6 else None


def _gate(
    v: str,
    enc: Encoder,
    fp32: Embed,
    records: dict[str, VariantRecord],
    int8_enc: Encoder | None,
    step: Step,
    *,
    stand_in: bool,
    int8_recipe: str,
    gate_pairs: int,
) -> VariantRecord:
    """``v``'s record with its gate, judged against ``fp32`` (``records`` holds the variants measured before it;
    ``int8_enc``: int8's encoder, when ``v`` is int8-avx2 and int8 was built)."""
    rec = records[v]
    if v == "int8-avx2" and int8_enc is not None:
        same = _identical(int8_enc, enc, pairs=min(gate_pairs, 64))
        if same is not None:  # the same function: int8's retrieval and STS figures are this variant's
            gate = {
                **gate_record(dict(rec.parity), records["int8"].gate["figures"], random_weights=stand_in),
                "recipe": _gate_recipe(v, int8_recipe),
                "figures_from": {"variant": "int8", "identical_vectors": same},
            }
            step(f"  {v}: identical to int8 on {same['texts']} texts (max abs {same['max_abs']:.1e}): its figures")
            step(f"  {gate_line(v, gate, rec.parity)}")
            return VariantRecord(**{**rec.__dict__, "gate": gate})
    step(f"  {v} quality gate: retrieval and STS on {gate_pairs} dev pairs per language")

    def embed(t: list[str], task: str | None) -> np.ndarray:
        return enc.encode(t, task=task, batch_size=32)

    figures = gate_figures(fp32, memo(embed), prompts=enc.facts.prompts, pairs_per_lang=gate_pairs)
    gate = {**gate_record(dict(rec.parity), figures, random_weights=stand_in), "recipe": _gate_recipe(v, int8_recipe)}
    if v == "int8-openvino":
        gate["engine"] = {"openvino": openvino_version(), **rec.engine_options}
    step(f"  {gate_line(v, gate, rec.parity)}")
    return VariantRecord(**{**rec.__dict__, "gate": gate})


def measure(
    src: Source,
    folder: Path,
    records: dict[str, VariantRecord],
    n_real: int,
    step: Step,
    *,
    int8_recipe: str,
    gate_pairs: int,
) -> tuple[dict[str, VariantRecord], dict[str, list[str]], dict]:
    """The records with their parity figures (and a gate record for each quantised variant), each variant's parity
    failures, and the manifest's ``reference`` entry (the reference set is written into ``folder``, which holds the
    written variants and a manifest listing them).

    Memory: the parity cases are tokenised before PyTorch's model is loaded; PyTorch is released once the reference
    vectors exist whenever the export has fp32 (the gates then judge against the exported fp32, equal to PyTorch by
    parity); the fp32 vectors every gate compares with are computed once and the fp32 model released before the
    first quantised variant is loaded; then each quantised variant is loaded, measured, gated and released in turn.
    At full size no two 1.4 GB models are held at once."""
    import gc

    from .reference import Reference

    facts = Manifest.read(folder).model
    cases = _cases(folder, next(iter(records)), n_real, facts.max_length)
    ref = Reference(src.folder, pooling=facts.pooling, normalize=facts.normalize, max_length=facts.max_length)
    parity, reference = _parity(folder, ref, cases, records, facts, n_real, step)
    out: dict[str, VariantRecord] = {}
    fails: dict[str, list[str]] = {}
    base: Embed
    if "fp32" in records:
        del ref
        gc.collect()
        out["fp32"], fails["fp32"], enc32 = parity("fp32")
        base = lambda t, task: enc32.encode(t, task=task, batch_size=32)
    else:
        base = lambda t, task: ref.embed(prepare_texts(list(t), task=task, prompts=facts.prompts), batch_size=32)
    fp32 = memo(base)
    gated = [v for v in records if v in GATED_VARIANTS]
    if gated:
        step.stage(f"fp32 vectors of the gates' {gate_pairs} STS pairs per language")
        step(f"  fp32 vectors for the gates: {gate_pairs} STS dev pairs per language, every task the gate uses")
        gate_figures(fp32, fp32, prompts=facts.prompts, pairs_per_lang=gate_pairs)  # fills the memo
    del base
    enc32 = ref = None  # type: ignore[assignment]  # the gates read the memo from here on
    gc.collect()
    int8_enc: Encoder | None = None
    for v in (v for v in records if v != "fp32"):
        if v in GATED_VARIANTS:
            step.stage(f"parity and gate {v}")
        out[v], fails[v], enc = parity(v)
        if v in GATED_VARIANTS:
            out[v] = _gate(
                v,
                enc,
                fp32,
                out,
                int8_enc if v == "int8-avx2" else None,
                step,
                stand_in=bool(src.stand_in),
                int8_recipe=int8_recipe,
                gate_pairs=gate_pairs,
            )
        if v == "int8" and "int8-avx2" in records:
            int8_enc = enc  # int8-avx2's gate compares the two
        elif v == "int8-avx2":
            int8_enc = None
        del enc
        gc.collect()
    return out, fails, reference
