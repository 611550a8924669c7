"""What an artifact's manifest says about its quality, in words: the parity table and one line per quantised variant's quality gate.

Shared by ``rosberta-onnx info``/``export``/``demo`` and the README generator, so every place prints the same.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .manifest import Manifest

__all__ = ["parity_table", "gate_line", "gate_lines"]


def parity_table(manifest: Manifest) -> str:
    """Markdown table of each variant's parity figures, from a manifest."""
    rows = [
        "| variant | size MB | cosine min | cosine mean | max abs diff | worst case | threshold | result |",
        "|---|---:|---:|---:|---:|---|---|---|",
    ]
    for name, rec in manifest.variants.items():
        p = rec.parity
        if "cos_min" not in p:
            rows.append(f"| {name} | {rec.size_bytes / 1e6:.0f} | – | – | – | – | – | not measured |")
            continue
        thr = ", ".join(f"{k} {v:g}" for k, v in p.get("thresholds", {}).items()) or "recorded only"
        result = "pass" if p.get("passed") else f"FAIL ({len(p.get('failures', []))})"
        if rec.gate:
            result += "; gate " + ("pass" if rec.gate_passed else "FAIL")
        rows.append(
            f"| {name} | {rec.size_bytes / 1e6:.0f} | {p['cos_min']:.6f} | {p['cos_mean']:.6f} | "
            f"{p['max_abs']:.2e} | {p['worst_case']} | {thr} | {result} |"
        )
    return "\n".join(rows)


def _langs(values: Mapping[str, float], fmt: str) -> str:
    return ", ".join(f"{lang} {v:{fmt}}" for lang, v in values.items())


def _criterion(name: str, threshold: float, parity: Mapping[str, Any], figures: Mapping[str, Any]) -> str:
    if name == "cos_min":
        return f"cosine min {parity['cos_min']:.5f} (≥ {threshold:g})"
    if name == "cos_mean":
        return f"cosine mean {parity['cos_mean']:.5f} (≥ {threshold:g})"
    if name == "top10_overlap_min":
        return f"top-10 overlap with fp32 {_langs(figures['top10_overlap'], '.3f')} (≥ {threshold:g})"
    if name == "spearman_delta_max":
        delta = {k: abs(figures["spearman_int8"][k] - figures["spearman_fp32"][k]) for k in figures["spearman_fp32"]}
        return f"STS Spearman Δ vs fp32 {_langs(delta, '.4f')} (≤ {threshold:g})"
    return f"{name} (≤/≥ {threshold:g})"


def gate_line(variant: str, gate: Mapping[str, Any], parity: Mapping[str, Any]) -> str:
    """One line: the verdict, the judged criteria with their figures, and the recorded-only ones with the reason
    (``gate`` and ``parity`` as a variant's manifest record holds them)."""
    thresholds = gate.get("thresholds", {})
    judged = list(gate.get("judged", thresholds))  # records written before the split judged everything
    recorded = list(gate.get("recorded", ()))
    figures = gate.get("figures", {})

    def describe(names: list[str]) -> str:
        out = []
        for n in names:
            try:
                out.append(_criterion(n, thresholds[n], parity, figures))
            except (KeyError, TypeError):
                out.append(f"{n}: not measured")
        return "; ".join(out)

    verdict = "pass" if gate.get("passed") else "FAIL (" + "; ".join(gate.get("failures", [])) + ")"
    line = f"{variant} gate: {verdict} — judged: {describe(judged)}"
    if recorded:
        missed = len(gate.get("recorded_misses", []))
        line += f"; recorded, not judged ({gate.get('recorded_reason') or 'see manifest'}): {describe(recorded)}" + (
            f" [{missed} figure(s) below threshold]" if missed else ""
        )
    return line


def gate_lines(manifest: Manifest) -> list[str]:
    """:func:`gate_line` for every variant that has a gate record."""
    return [gate_line(name, rec.gate, rec.parity) for name, rec in manifest.variants.items() if rec.gate]
