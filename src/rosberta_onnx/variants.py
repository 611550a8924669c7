"""Which variant runs, and why: the rules in one place, and a typed :class:`Selection` that says what was asked,
what was picked, why, and what was measured.

- A variant named is used if it may run here: it is in the artifact, its engine is installed, and it is not the
  fp16 (GPU) variant on a CPU provider (unless ``allow_cpu_fp16``).
- ``auto``: fp16 on a CUDA device; on the CPU every quantised variant that passed its quality gate and whose engine
  is installed (onnxruntime's int8, its unsigned twin int8-avx2, OpenVINO's int8, int4), then fp32. A variant that
  failed its gate is never picked. By instruction set (:mod:`.hardware`):

  - onnxruntime's ``int8`` multiplies U8xS8, exact with VNNI/AMX and on every ARM64 CPU; on x86 without VNNI (AVX2,
    AVX-512 without VNNI) pairs of products pass through 16 bits and saturate, so ``auto`` leaves it out there;
  - ``int8-avx2`` holds the same weights as U8 (zero point 128): U8xU8 products widen to 16 bits before they are
    summed, exact on every x86 CPU. It is a candidate only where ``int8`` is not exact (with VNNI/AMX onnxruntime's
    U8xU8 kernel is ~1.8x slower than its U8xS8 one, measured);
  - a gate verdict holds only on the ISA it was measured on (:mod:`.trust`): a candidate gated on another ISA is
    re-measured here against the artifact's reference set first, once per machine, and kept only if it passes.
- When ``auto`` has more than one CPU candidate it times them once on this machine (:mod:`.autotune`) and keeps the
  fastest, never a quantised variant slower than fp32. ``autotune=False`` (or ``ROSBERTA_AUTOTUNE=0``) measures
  nothing: the first candidate by the rules, and candidates gated on another ISA are left out.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .autotune import autotune_enabled, fastest_variant
from .errors import VariantError
from .hardware import cpu_isa, int8_native, isa_words
from .manifest import GATED_VARIANTS, VARIANTS, Manifest
from .session import CUDA, Session, engine_available, engine_versions, resolve_providers
from .trust import Trust, VariantCheck, remember, trust_here

__all__ = ["Selection", "HardwareWarning", "auto_candidates", "select_variant", "choose"]


class HardwareWarning(RuntimeWarning):
    """The chosen variant is a poor fit for this CPU."""


@dataclass(frozen=True)
class Selection:
    """Why a variant runs. ``str(selection)`` is :attr:`reason`."""

    requested: str  # "auto" or a variant name
    variant: str  # what runs
    reason: str  # why, in words
    candidates: tuple[str, ...] = ()  # what "auto" could pick here, best first by the rules
    timings_ms: Mapping[str, float] = field(default_factory=dict)  # autotune's medians, when it measured or cached
    cached: bool = False  # the timings came from the autotune cache
    # each quantised candidate's gate verdict on this CPU: "export" (gated on this ISA), "verified"/"failed"
    # (re-measured here), "unverified", with why
    trust: Mapping[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.reason


def auto_candidates(manifest: Manifest, providers: list[str], isa: str | None = None) -> list[str]:
    """What ``auto`` may pick here by the rules, best first: fp16 on a CUDA device; on the CPU every quantised
    variant that passed its quality gate, whose engine is installed and whose kernels are exact on ``isa`` (default:
    this CPU's), in :data:`GATED_VARIANTS` order, then fp32."""
    if CUDA in providers and "fp16" in manifest.variants:
        return ["fp16"]
    out = []
    if CUDA not in providers:
        native = int8_native(isa if isa is not None else cpu_isa())
        out = [
            v
            for v in GATED_VARIANTS
            if v in manifest.variants
            and manifest.variants[v].gate_passed
            and engine_available(manifest.variants[v])
            and not (v == "int8" and not native)  # U8xS8 saturates without VNNI
            and not (v == "int8-avx2" and native)  # the slower U8xU8 kernel, only for CPUs without VNNI
        ]
    return out + ["fp32"] * ("fp32" in manifest.variants)


def select_variant(
    manifest: Manifest, requested: str = "auto", *, providers: list[str] | None = None, allow_cpu_fp16: bool = False
) -> Selection:
    """The choice by the rules alone, without measuring anything; an error naming the fix if nothing may run."""
    providers = resolve_providers(providers)
    isa = cpu_isa()
    if requested == "auto":
        candidates = auto_candidates(manifest, providers, isa)
        if not candidates:
            raise VariantError(
                f"variant='auto' found nothing it may use here: the artifact has {sorted(manifest.variants)}, "
                f"providers are {providers}. Export fp32 too, or name a variant explicitly."
            )
        int8_out = CUDA not in providers and not int8_native(isa) and _usable(manifest, "int8")
        if int8_out and "int8-avx2" not in candidates:
            _warn_not_native(isa, "variant='auto' leaves it out; re-export to get int8-avx2, which is exact here.")
        reason = f"auto: {candidates[0]}" + (f" (onnxruntime int8 not exact on {isa})" if int8_out else "")
        return Selection("auto", candidates[0], reason, tuple(candidates))
    if requested not in VARIANTS:
        raise VariantError(f"unknown variant {requested!r}; choose one of {('auto',) + VARIANTS}")
    manifest.variant(requested)  # raises if absent
    if requested == "fp16" and CUDA not in providers and not allow_cpu_fp16:
        raise VariantError(
            "variant 'fp16' is a GPU variant: on the CPU execution provider onnxruntime runs it by casting around "
            "fp16 ops, slower than fp32. Use variant='fp32' or 'int8' on CPU, install the gpu extra for CUDA, "
            "or pass allow_cpu_fp16=True to run it anyway (e.g. to check its correctness)."
        )
    if requested == "int8" and not int8_native(isa):
        twin = "int8-avx2" in manifest.variants
        _warn_not_native(isa, "Consider variant='int8-avx2' (exact here)." if twin else "Consider variant='fp32'.")
    return Selection(requested, requested, "requested", (requested,))


def _usable(manifest: Manifest, variant: str) -> bool:
    rec = manifest.variants.get(variant)
    return rec is not None and rec.gate_passed and engine_available(rec)


def _warn_not_native(isa: str, advice: str) -> None:
    warnings.warn(
        f"this CPU ({isa}: {isa_words(isa)}) has no VNNI/AMX: onnxruntime's U8xS8 int8 products go through "
        f"16-bit intermediates that saturate (cosine 0.992 against fp32 measured on MiniLM). {advice}",
        HardwareWarning,
        stacklevel=5,
    )


def _trusted(
    manifest: Manifest,
    candidates: tuple[str, ...],
    *,
    folder: Path,
    measure: bool,
    check: Callable[[str], VariantCheck],
) -> tuple[list[str], dict[str, str]]:
    """The candidates whose gate verdict holds on this CPU (re-measuring, with ``measure``, those gated on another
    ISA), and each quantised candidate's trust in words."""
    isa, versions = cpu_isa(), engine_versions()
    kept, trust = [], {}
    for v in candidates:
        if v not in GATED_VARIANTS:
            kept.append(v)
            continue
        t = trust_here(folder, manifest, v, isa=isa, engine_versions=versions)
        if t.status == "unverified" and measure and manifest.reference:
            result = check(v)
            remember(folder, manifest, result, isa=isa, engine_versions=versions)
            t = trust_here(folder, manifest, v, isa=isa, engine_versions=versions)
            if t.status == "unverified":  # nowhere writable to remember it: the measurement still decides
                t = Trust("verified" if result.passed else "failed", f"re-measured on {isa}, not cached")
        elif t.status == "unverified":
            t = Trust(
                "unverified",
                t.detail
                + (
                    "; left out (autotune=False measures nothing: run `rosberta-onnx verify` once)"
                    if manifest.reference
                    else "; left out (this export ships no reference set to re-measure it: re-export)"
                ),
            )
        trust[v] = f"{t.status}: {t.detail}"
        if t.status in ("export", "verified"):
            kept.append(v)
    return kept, trust


def choose(
    manifest: Manifest,
    requested: str,
    *,
    folder: Path,
    providers: list[str],
    allow_cpu_fp16: bool,
    autotune: bool | None,
    threads: int,
    streams: int,
    open_session: Callable[[str], Session],
    release: Callable[[str], None],
    check: Callable[[str], VariantCheck],
) -> Selection:
    """:func:`select_variant`, then for ``auto`` on the CPU the candidates whose gate holds on this ISA
    (:mod:`.trust`; ``check`` measures one against the reference set), then the fastest of them
    (:mod:`.autotune`). ``open_session`` is the caller's and keeps what it opens; ``release`` lets one go."""
    sel = select_variant(manifest, requested, providers=providers, allow_cpu_fp16=allow_cpu_fp16)
    if requested != "auto" or sel.variant not in GATED_VARIANTS:
        return sel
    measure = autotune_enabled(autotune)
    kept, trust = _trusted(manifest, sel.candidates, folder=folder, measure=measure, check=check)
    dropped = [v for v in sel.candidates if v not in kept]
    note = sel.reason.removeprefix(f"auto: {sel.variant}")  # what the rules left out, e.g. int8 without VNNI
    note += f" ({'; '.join(trust[v] for v in dropped)})" if dropped else ""
    if not kept:
        raise VariantError(
            f"variant='auto' found nothing it may use on this CPU: {note.strip(' ()')}. Export fp32 too, or name a "
            f"variant explicitly."
        )
    if len(kept) < 2 or kept[0] not in GATED_VARIANTS or not measure:
        return Selection("auto", kept[0], f"auto: {kept[0]}{note}", tuple(kept), trust=trust)
    shas = {v: manifest.variant(v).files[manifest.variant(v).file] for v in kept}
    verdict = fastest_variant(
        folder,
        shas,
        threads=threads,
        streams=streams,
        open_session=open_session,
        release=release,
        engine_versions=engine_versions(),
    )
    timings = ", ".join(f"{v} {ms:.1f} ms" for v, ms in sorted(verdict.ms.items(), key=lambda kv: kv[1]))
    reason = f"auto: {verdict.choice} ({timings}" + (", cached)" if verdict.cached else ")") + note
    return Selection("auto", verdict.choice, reason, tuple(kept), dict(verdict.ms), verdict.cached, trust)
