"""What an export will build, checked before anything runs: the variants, the int8 recipe and its calibration, and
a writable output. A mistake here costs the user seconds, not the minutes of a half-done export."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rosberta_onnx.manifest import VARIANTS
from rosberta_onnx.openvino_engine import openvino_available

from .errors import ExportError
from .quantize import DEFAULT_INT8_RECIPE, INT8_RECIPES, ROWWISE_SETTINGS, RowwiseSettings, calibration_texts

__all__ = ["ExportOptions", "resolve_options", "check_output", "openvino_weights"]


@dataclass(frozen=True)
class ExportOptions:
    variants: tuple[str, ...]
    int8_recipe: str
    settings: RowwiseSettings  # the row-wise weights' calibration and rounding (int8 and int8-openvino share them)
    calibrates: bool  # whether any variant asked for is built from calibration (row-wise int8 weights, int4)


def openvino_weights(recipe: str) -> str:
    """int8-openvino always carries row-wise weights: those of the recipe asked for, else the default recipe's."""
    return recipe if recipe in ROWWISE_SETTINGS else DEFAULT_INT8_RECIPE


def resolve_options(
    variants: tuple[str, ...] | None, int8_recipe: str, calibration_sentences: int | None, log: Callable[[str], None]
) -> ExportOptions:
    """``variants`` None: every variant this environment can build (``int8-openvino`` needs openvino to gate it)."""
    if variants is None:
        variants = tuple(v for v in VARIANTS if v != "int8-openvino" or openvino_available())
        if "int8-openvino" not in variants:
            log(
                "NOTE: openvino is not installed, so the int8-openvino variant is left out "
                "(pip install 'rosberta-onnx[openvino]' to build and gate it)"
            )
    variants = tuple(dict.fromkeys(variants))
    bad = [v for v in variants if v not in VARIANTS]
    if bad or not variants:
        raise ExportError(f"unknown variant(s) {bad or variants}; choose from {', '.join(VARIANTS)}")
    if "int8-openvino" in variants and not openvino_available():
        raise ExportError(
            "variant int8-openvino is built and gated with OpenVINO, which is not installed: "
            "pip install 'rosberta-onnx[openvino]', or leave int8-openvino out of --variants"
        )
    if int8_recipe not in INT8_RECIPES:
        raise ExportError(f"unknown int8 recipe {int8_recipe!r}; choose one of {', '.join(INT8_RECIPES)}")
    settings = ROWWISE_SETTINGS[openvino_weights(int8_recipe)]
    # the row-wise int8 recipes, int8-openvino (which takes their weights) and int4 (GPTQ) calibrate
    calibrates = (
        "int8-openvino" in variants
        or "int4" in variants
        or (("int8" in variants or "int8-avx2" in variants) and int8_recipe in ROWWISE_SETTINGS)
    )
    if calibration_sentences is not None:
        available = len(calibration_texts(10**9))
        if not 1 <= calibration_sentences <= available:
            raise ExportError(
                f"calibration_sentences={calibration_sentences} is out of range: the shipped RU/EN STS "
                f"train split has {available} sentences; choose 1..{available} (default "
                f"{settings.sentences})"
            )
        settings = dataclasses.replace(settings, sentences=calibration_sentences)
        if not calibrates:
            log(
                f"NOTE: calibration_sentences={calibration_sentences} is not used: none of the variants "
                f"{', '.join(variants)} with int8 recipe {int8_recipe} calibrates (int8 with a row-wise recipe, "
                f"int8-openvino or int4 would)"
            )
    return ExportOptions(variants, int8_recipe, settings, calibrates)


def check_output(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise ExportError(f"output {str(out)!r} exists and is a file; choose a folder path")
    if out.exists() and not overwrite:
        raise ExportError(
            f"output folder {str(out)!r} already exists; pass --overwrite to replace it (the old one "
            f"stays until the new export has fully succeeded)"
        )
    parent = out.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"cannot create {str(parent)!r} ({exc.strerror}); choose a writable output path") from exc
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ExportError(f"cannot write into {str(parent)!r} (permission denied); choose a writable output path")
