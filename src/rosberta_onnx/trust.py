"""Whether a quantised variant's gate verdict holds on this CPU, and the check that re-measures it here.

int8 kernels differ by instruction set: the same file gives exact products on a CPU with VNNI and saturating ones on
AVX2 without it. So a gate verdict holds for the ISA it was measured on (the manifest's ``isa`` beside each quantised
variant) and nowhere else. On another ISA the variant is re-measured against the artifact's reference set (its texts
and PyTorch fp32 vectors, :mod:`.reference`) with the gate's own thresholds, and the result is remembered for this
ISA and file (:mod:`.local_cache`), so it costs once per machine.

:func:`check_variant` is the measurement (``rosberta-onnx verify`` and ``auto`` both use it); :func:`trust_here`
says what is known without measuring.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from .hardware import cpu_info
from .local_cache import LocalCache
from .manifest import GATED_VARIANTS, Manifest
from .quality import Embed, cosine_figures, memo, misses, sts_figures
from .reference import ReferenceSet

__all__ = ["VERIFIED_NAME", "Trust", "VariantCheck", "trust_here", "check_variant", "remember", "criteria_of"]

VERIFIED_NAME = ".verified.json"
COSINE_CRITERIA = ("cos_min", "cos_mean", "max_abs")


class Trust(NamedTuple):
    """``status``: ``export`` (gated on this ISA), ``verified`` / ``failed`` (re-measured here), ``unverified``."""

    status: str
    detail: str


@dataclass(frozen=True)
class VariantCheck:
    """One variant measured on this CPU against the reference set."""

    variant: str
    passed: bool
    cosines: dict[str, Any] = field(default_factory=dict)  # cosine_figures, without the per-case table
    sts: dict[str, Any] = field(default_factory=dict)  # sts_figures against this CPU's fp32, when measured
    thresholds: dict[str, float] = field(default_factory=dict)
    judged: tuple[str, ...] = ()
    failures: tuple[str, ...] = ()
    recorded_misses: tuple[str, ...] = ()  # misses of criteria the manifest records but does not judge
    error: str = ""  # the variant could not be run at all (a corrupt file, a missing engine)

    def summary(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "cos_min": self.cosines.get("cos_min"),
            "cos_mean": self.cosines.get("cos_mean"),
            "failures": list(self.failures),
            "error": self.error,
        }


def criteria_of(manifest: Manifest, variant: str) -> tuple[dict[str, float], tuple[str, ...]]:
    """The thresholds a variant is held to and which of them are judged: a quantised variant's gate (as exported),
    fp32/fp16's parity thresholds (all judged)."""
    rec = manifest.variant(variant)
    if variant in GATED_VARIANTS:
        thresholds = dict(rec.gate.get("thresholds", {}))
        return thresholds, tuple(rec.gate.get("judged", thresholds))
    thresholds = dict(rec.parity.get("thresholds", {}))
    return thresholds, tuple(thresholds)


def check_variant(
    manifest: Manifest,
    variant: str,
    embed: Embed,
    reference: ReferenceSet,
    *,
    fp32: Embed | None = None,
    sts_pairs: int = 0,
) -> VariantCheck:
    """``variant`` (embedded by ``embed``) against the reference vectors; with ``fp32`` and ``sts_pairs`` also the
    retrieval and STS criteria on that many pairs per language, against ``fp32`` run on this CPU."""
    thresholds, judged = criteria_of(manifest, variant)
    if not any(c in COSINE_CRITERIA for c in judged):
        return VariantCheck(
            variant, False, error=f"the manifest records no cosine thresholds for {variant}: nothing to judge it by"
        )
    got = embed(list(reference.texts), None)
    if not np.isfinite(got).all():
        bad = [n for n, row in zip(reference.names, got) if not np.isfinite(row).all()]
        return VariantCheck(variant, False, error=f"non-finite values (NaN/inf) in the vectors of {bad[:5]}")
    cos = cosine_figures(reference.vectors, got, list(reference.names))
    sts = (
        sts_figures(fp32, memo(embed), prompts=manifest.model.prompts, pairs=reference.sts_sample(sts_pairs))
        if fp32 is not None and sts_pairs > 0 and variant in GATED_VARIANTS
        else {}
    )
    missed = misses(cos, sts, thresholds)
    # retrieval and STS on a sample of the dev split are recorded, never judged: the gate judges them on the whole
    # split at export, and at 64 pairs the Spearman delta alone moves by more than its threshold (0.0086 for an int8
    # file that passes at 1500 pairs, measured on MiniLM)
    judged = tuple(c for c in judged if c in COSINE_CRITERIA)
    failures = tuple(m for c in judged for m in missed.get(c, []))
    recorded = tuple(m for c, ms in missed.items() if c not in judged for m in ms)
    cosines = {k: v for k, v in cos.items() if k != "cases"}
    return VariantCheck(variant, not failures, cosines, sts, thresholds, judged, failures, recorded)


def _key(manifest: Manifest, variant: str, isa: str, engine_versions: dict[str, str]) -> dict[str, Any]:
    rec = manifest.variant(variant)
    return {
        "variant": variant,
        "file_sha256": rec.files.get(rec.file, ""),
        "reference_sha256": dict(manifest.reference.get("files", {})),
        "isa": isa,
        "machine": cpu_info().machine,
        "engine": rec.engine,
        "engine_version": engine_versions.get(rec.engine, ""),
    }


def trust_here(folder: Path, manifest: Manifest, variant: str, *, isa: str, engine_versions: dict[str, str]) -> Trust:
    """What is known of ``variant``'s gate verdict on ``isa`` without measuring anything."""
    rec = manifest.variant(variant)
    if rec.isa == isa:
        return Trust("export", f"gated on {isa} at export")
    hit = LocalCache(folder, VERIFIED_NAME).get(_key(manifest, variant, isa, engine_versions))
    if hit is None:
        return Trust("unverified", f"gated on {rec.isa or 'an unrecorded ISA'}, never measured on {isa}")
    value, where = hit
    if value.get("passed"):
        return Trust("verified", f"re-measured on {isa}: cosine min {value.get('cos_min', float('nan')):.5f}")
    why = "; ".join(value.get("failures") or [value.get("error", "")])
    return Trust("failed", f"failed on {isa} ({why}; recorded in {where})")


def remember(
    folder: Path, manifest: Manifest, check: VariantCheck, *, isa: str, engine_versions: dict[str, str]
) -> str | None:
    """Keep ``check``'s verdict for this ISA and file; the cache file written (None if nowhere was writable)."""
    value = {**check.summary(), "cpu": cpu_info().describe(), "measured": time.strftime("%Y-%m-%dT%H:%M:%S")}
    return LocalCache(folder, VERIFIED_NAME).put(_key(manifest, check.variant, isa, engine_versions), value)


CheckFn = Callable[[str], VariantCheck]
