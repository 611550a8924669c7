"""Does this artifact hold on *this* CPU? Each variant re-measured against the reference set it ships.

    from rosberta_onnx import verify
    report = verify("models/ru-en-rosberta", variants=["int8"])
    print(report)            # the CPU and its ISA, one line per variant, the verdict
    assert report.passed

The cosine criteria (fp32/fp16: the parity thresholds; a quantised variant: its gate's) are measured against the
PyTorch fp32 vectors shipped in the artifact, on the same texts the export measured them on, and judged. With
``sts_pairs`` a quantised variant's retrieval and STS figures are measured too, on that many of the shipped STS pairs
per language, against the fp32 variant on this CPU: recorded beside the verdict, not judged (the gate judges them on
the whole dev split at export; on a small sample the Spearman delta is noise of the size of its threshold). Each
quantised variant's verdict is remembered for this ISA, so ``variant="auto"`` trusts (or drops) it without
measuring again.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .encoder import Encoder
from .errors import RosbertaError, VariantError
from .hardware import cpu_info, isa_words
from .manifest import GATED_VARIANTS, VARIANTS, Manifest
from .quality import Embed, memo
from .reference import read_reference
from .session import CUDA, engine_available, engine_versions, resolve_providers
from .trust import VariantCheck, check_variant, remember

__all__ = ["VerifyReport", "verify"]


@dataclass(frozen=True)
class VerifyReport:
    """What ``verify`` measured: the CPU, and one :class:`~rosberta_onnx.trust.VariantCheck` per variant."""

    folder: str
    cpu: str  # the CPU in words (hardware.CpuInfo.describe)
    isa: str
    machine: str
    reference: str  # the reference set in words
    checks: tuple[VariantCheck, ...]
    export_isa: dict[str, str]  # variant -> the ISA its gate was measured on at export
    skipped: dict[str, str]  # variant in the artifact -> why it was not checked

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)

    def lines(self) -> list[str]:
        out = [
            f"CPU: {self.cpu}",
            f"ISA: {self.isa} ({isa_words(self.isa)}), machine {self.machine}",
            f"reference: {self.reference}",
            "",
            "| variant | gated on | cos min | cos mean | max abs | top-10 en/ru | STS Δ en/ru | here |",
            "|---|---|---:|---:|---:|---|---|---|",
        ]
        for c in self.checks:
            if c.error:
                out.append(
                    f"| {c.variant} | {self.export_isa.get(c.variant) or '–'} | – | – | – | – | – | FAIL: {c.error} |"
                )
                continue
            top = c.sts.get("top10_overlap", {})
            sp8, sp32 = c.sts.get("spearman_int8", {}), c.sts.get("spearman_fp32", {})
            top_s = "/".join(f"{top[lang]:.3f}" for lang in top) or "–"
            sts_s = "/".join(f"{abs(sp8[lang] - sp32[lang]):.4f}" for lang in sp8) or "–"
            verdict = "pass" if c.passed else "FAIL: " + "; ".join(c.failures)
            judged = ", ".join(f"{k} {c.thresholds[k]:g}" for k in c.judged if k in c.thresholds)
            out.append(
                f"| {c.variant} | {self.export_isa.get(c.variant) or '–'} | {c.cosines['cos_min']:.6f} | "
                f"{c.cosines['cos_mean']:.6f} | {c.cosines['max_abs']:.2e} | {top_s} | {sts_s} | {verdict} "
                f"(judged: {judged}) |"
            )
        out += [f"not checked: {v} ({why})" for v, why in self.skipped.items()]
        out += ["", "verdict: " + ("pass" if self.passed else "FAIL") + f" on {self.isa}"]
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())


def _default_variants(manifest: Manifest, providers: list[str]) -> list[str]:
    """fp32, and every quantised variant that passed its gate at export and whose engine is installed; fp16 on a
    CUDA device."""
    out = ["fp32"] * ("fp32" in manifest.variants)
    out += ["fp16"] * ("fp16" in manifest.variants and CUDA in providers)
    return out + [
        v
        for v in GATED_VARIANTS
        if v in manifest.variants and manifest.variants[v].gate_passed and engine_available(manifest.variants[v])
    ]


def verify(
    path: str | os.PathLike,
    *,
    variants: Sequence[str] | None = None,
    sts_pairs: int = 0,
    providers: list[str] | None = None,
    threads: int | None = None,
    remember_verdicts: bool = True,
) -> VerifyReport:
    """Re-measure ``variants`` (default: fp32 and every quantised variant that passed its gate; ``["all"]``: every
    variant in the artifact whose engine is installed) on this CPU against the artifact's reference set. ``sts_pairs``: also the
    retrieval and STS figures on that many pairs per language, recorded (needs the fp32 variant). A variant that
    cannot run (a corrupt file, a missing engine) is a failed check naming why, not an exception."""
    folder = Path(path)
    manifest = Manifest.read(folder)
    reference = read_reference(folder, manifest)
    provs = resolve_providers(providers)
    if variants is None:
        names = _default_variants(manifest, provs)
    elif list(variants) == ["all"]:  # every variant that can run here (fp16 on the CPU too, to check it)
        names = [v for v, rec in manifest.variants.items() if engine_available(rec)]
    else:
        names = list(dict.fromkeys(variants))
    for v in names:
        if v not in VARIANTS:
            raise VariantError(f"unknown variant {v!r}; choose from {', '.join(VARIANTS)} (or 'all')")
        manifest.variant(v)  # raises, naming what the artifact has
    if sts_pairs < 0:
        raise ValueError(f"sts_pairs must be >= 0, got {sts_pairs}")
    if sts_pairs and "fp32" not in manifest.variants:
        raise VariantError("sts_pairs measures retrieval and STS against the fp32 variant, which this artifact lacks")
    available = reference.sts_sample(sts_pairs) if sts_pairs else {}
    if sts_pairs and min((len(p) for p in available.values()), default=0) < sts_pairs:
        shipped = min((len(p) for p in reference.sts.values()), default=0)
        raise ValueError(f"sts_pairs={sts_pairs}: the artifact ships {shipped} STS pairs per language; ask for fewer")

    def load(v: str) -> Encoder:
        return Encoder.load(folder, variant=v, providers=provs, threads=threads, allow_cpu_fp16=True, autotune=False)

    fp32: Embed | None = None
    if sts_pairs and any(v in GATED_VARIANTS for v in names):
        fp32 = memo(_embedder(load("fp32")))
    isa, versions = cpu_info().isa, engine_versions()
    checks = []
    for v in names:
        try:
            enc = load(v)
        except (RosbertaError, OSError, RuntimeError) as exc:
            checks.append(VariantCheck(v, False, error=str(exc)))
            continue
        check = check_variant(manifest, v, _embedder(enc), reference, fp32=fp32, sts_pairs=sts_pairs)
        del enc  # one variant's session in memory at a time (the full-size fp32 holds 1.4 GB)
        checks.append(check)
        if remember_verdicts and v in GATED_VARIANTS and not check.error:
            remember(folder, manifest, check, isa=isa, engine_versions=versions)
    n_sts = f"; STS sample: {sts_pairs} pairs per language against fp32 here" if sts_pairs else ""
    return VerifyReport(
        folder=str(folder),
        cpu=cpu_info().describe(),
        isa=isa,
        machine=cpu_info().machine,
        reference=f"{len(reference.texts)} texts with {reference.made_by or 'PyTorch fp32'} vectors{n_sts}",
        checks=tuple(checks),
        export_isa={v: manifest.variants[v].isa for v in names},
        skipped={v: _why_not(manifest, v, provs) for v in manifest.variants if v not in names},
    )


def _why_not(manifest: Manifest, variant: str, providers: list[str]) -> str:
    rec = manifest.variants[variant]
    if not engine_available(rec):
        return f"runs on {rec.engine}, not installed: pip install 'rosberta-onnx[{rec.engine}]'"
    if variant == "fp16" and CUDA not in providers:
        return "a GPU variant; --variant fp16 checks it on the CPU"
    if rec.gate and not rec.gate_passed:
        return "failed its gate at export; --variant " + variant + " re-measures it"
    return "not asked for"


def _embedder(enc: Encoder) -> Embed:
    return lambda texts, task: enc.encode(texts, task=task)
