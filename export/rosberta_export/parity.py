"""Parity figures: how closely an exported variant reproduces the PyTorch reference.

Every case is measured and reported; a check lists *all* failing cases with their figures, not the first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rosberta_onnx.quality import cosine_figures

from .corpus import edge_cases, parity_texts

__all__ = ["THRESHOLDS", "ParityCase", "parity_cases", "compare", "failures", "exact_length_text"]

# Per-variant tolerances on L2-normalised vectors. The quantised variants have no parity threshold: their
# figures are recorded and judged by the quality gate (gate.py).
THRESHOLDS = {
    "fp32": {"cos_min": 0.99999, "max_abs": 1e-4},
    "fp16": {"cos_min": 0.999},
    "int8": {},
    "int8-avx2": {},
    "int8-openvino": {},
    "int4": {},
}


@dataclass(frozen=True)
class ParityCase:
    name: str
    text: str


def exact_length_text(count_tokens, max_length: int) -> str:
    """A text that tokenises to exactly ``max_length`` tokens (specials included)."""
    k = max_length
    for _ in range(64):
        text = "a" + " a" * (k - 1)
        n = int(count_tokens(text))
        if n == max_length:
            return text
        k = max(1, k + (max_length - n))
    raise RuntimeError(f"could not build a text of exactly {max_length} tokens")


def parity_cases(n_real: int, *, max_length: int, count_tokens) -> list[ParityCase]:
    cases = [ParityCase(f"sts[{i}]", t) for i, t in enumerate(parity_texts(n_real))]
    cases += [ParityCase(name, t) for name, t in edge_cases(max_length).items()]
    cases.append(ParityCase("exactly_max_length", exact_length_text(count_tokens, max_length)))
    return cases


def compare(ref: np.ndarray, got: np.ndarray, names: list[str]) -> dict:
    """Figures over all rows plus the per-case cosine and max abs difference."""
    return cosine_figures(ref, got, names)


def failures(figures: dict, thresholds: dict) -> list[str]:
    """Every case that breaks a threshold, with its figures."""
    out = []
    for name, f in figures["cases"].items():
        bad = []
        if "cos_min" in thresholds and f["cos"] < thresholds["cos_min"]:
            bad.append(f"cosine {f['cos']:.7f} < {thresholds['cos_min']}")
        if "max_abs" in thresholds and f["max_abs"] > thresholds["max_abs"]:
            bad.append(f"max abs {f['max_abs']:.2e} > {thresholds['max_abs']:.0e}")
        if bad:
            out.append(f"{name}: " + ", ".join(bad))
    if "cos_mean" in thresholds and figures["cos_mean"] < thresholds["cos_mean"]:
        out.append(f"mean cosine {figures['cos_mean']:.6f} < {thresholds['cos_mean']}")
    return out
