"""Which variant runs, and why: the rules in one place, and a typed :class:`Selection` that says what was asked,
what was picked, why, and what was measured.

- A variant named is used if it may run here: it is in the artifact, its engine is installed, and it is not the
  fp16 (GPU) variant on a CPU provider (unless ``allow_cpu_fp16``).
- ``auto``: fp16 on a CUDA device; on the CPU every quantised variant that passed its quality gate and whose engine
  is installed (onnxruntime's int8, OpenVINO's int8, int4), then fp32. A variant that failed its gate is never picked. A CPU without VNNI/AMX leaves onnxruntime's int8 out
  (U8xS8 products through 16-bit intermediates can saturate, and are often no faster than fp32).
- When ``auto`` has more than one CPU candidate it times them once on this machine (:mod:`.autotune`) and keeps the
  fastest, never a quantised variant slower than fp32.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .autotune import autotune_enabled, fastest_variant
from .errors import VariantError
from .hardware import cpu_isa, int8_native
from .manifest import GATED_VARIANTS, VARIANTS, Manifest
from .session import CUDA, Session, engine_available, engine_versions, resolve_providers

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

    def __str__(self) -> str:
        return self.reason


def auto_candidates(manifest: Manifest, providers: list[str]) -> list[str]:
    """What ``auto`` may pick here, best first: fp16 on a CUDA device; on the CPU every quantised variant that passed
    its quality gate and whose engine is installed (in :data:`GATED_VARIANTS` order), then fp32."""
    if CUDA in providers and "fp16" in manifest.variants:
        return ["fp16"]
    out = []
    if CUDA not in providers:
        out = [
            v
            for v in GATED_VARIANTS
            if v in manifest.variants and manifest.variants[v].gate_passed and engine_available(manifest.variants[v])
        ]
    return out + ["fp32"] * ("fp32" in manifest.variants)


def select_variant(
    manifest: Manifest, requested: str = "auto", *, providers: list[str] | None = None, allow_cpu_fp16: bool = False
) -> Selection:
    """The choice by the rules alone, without timing anything; an error naming the fix if nothing may run."""
    providers = resolve_providers(providers)
    if requested == "auto":
        candidates = auto_candidates(manifest, providers)
        if not candidates:
            raise VariantError(
                f"variant='auto' found nothing it may use here: the artifact has {sorted(manifest.variants)}, "
                f"providers are {providers}. Export fp32 too, or name a variant explicitly."
            )
        chosen, reason = candidates[0], f"auto: {candidates[0]}"
        if chosen == "int8" and not int8_native(isa := cpu_isa()):
            out = len(candidates) > 1
            _warn_not_native(
                isa, "variant='auto' leaves onnxruntime's int8 out." if out else "Consider variant='fp32'."
            )
            if out:
                candidates = [v for v in candidates if v != "int8"]
                chosen, reason = candidates[0], f"auto: {candidates[0]} (onnxruntime int8 not native on {isa})"
        return Selection("auto", chosen, reason, tuple(candidates))
    if requested not in VARIANTS:
        raise VariantError(f"unknown variant {requested!r}; choose one of {('auto',) + VARIANTS}")
    manifest.variant(requested)  # raises if absent
    if requested == "fp16" and CUDA not in providers and not allow_cpu_fp16:
        raise VariantError(
            "variant 'fp16' is a GPU variant: on the CPU execution provider onnxruntime runs it by casting around "
            "fp16 ops, slower than fp32. Use variant='fp32' or 'int8' on CPU, install the gpu extra for CUDA, "
            "or pass allow_cpu_fp16=True to run it anyway (e.g. to check its correctness)."
        )
    if requested == "int8" and not int8_native(isa := cpu_isa()):
        _warn_not_native(isa, "Consider variant='fp32'.")
    return Selection(requested, requested, "requested", (requested,))


def _warn_not_native(isa: str, advice: str) -> None:
    warnings.warn(
        f"this CPU ({isa}) has no VNNI/AMX: U8xS8 int8 products go through 16-bit intermediates that can "
        f"saturate, and are often no faster than fp32. {advice}",
        HardwareWarning,
        stacklevel=5,
    )


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
) -> tuple[Selection, Session | None]:
    """:func:`select_variant`, then for ``auto`` with several CPU candidates the measured choice; also the chosen
    variant's session when the measurement opened it (so it is not loaded twice)."""
    sel = select_variant(manifest, requested, providers=providers, allow_cpu_fp16=allow_cpu_fp16)
    if (
        requested != "auto"
        or sel.variant not in GATED_VARIANTS
        or len(sel.candidates) < 2
        or not autotune_enabled(autotune)
    ):
        return sel, None
    shas = {v: manifest.variant(v).files[manifest.variant(v).file] for v in sel.candidates}
    verdict = fastest_variant(
        folder, shas, threads=threads, streams=streams, open_session=open_session, engine_versions=engine_versions()
    )
    timings = ", ".join(f"{v} {ms:.1f} ms" for v, ms in sorted(verdict.ms.items(), key=lambda kv: kv[1]))
    reason = f"auto: {verdict.choice} ({timings}" + (", cached)" if verdict.cached else ")")
    chosen = Selection("auto", verdict.choice, reason, sel.candidates, dict(verdict.ms), verdict.cached)
    return chosen, verdict.sessions.get(verdict.choice)
