"""The int8 variants: calibrate the row-wise recipe on STS train sentences, plan the weights (SmoothQuant, GPTQ
rounding: minutes on the full-size model), then write ``int8`` for onnxruntime and ``int8-openvino`` for OpenVINO's
CPU plugin from the same plans (hence the same weights), each with its graph rewrites (:mod:`.rewrites`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from rosberta_onnx.manifest import INT8_VARIANTS, ModelFacts
from rosberta_onnx.tokenize import TextTokenizer

from .convert import save_onnx, stamp
from .openvino_int8 import write_openvino_int8
from .options import ExportOptions
from .quantize import ROWWISE_SETTINGS, calibrate, quantize_int8
from .records import FILES
from .rewrites import rewrite_for_onnxruntime, rewrite_for_openvino
from .rowwise import plan_weights

__all__ = ["build_int8_variants", "REWRITES"]

# applied to each int8 file once it is built (after calibration, so the weights are those calibrated on every token)
REWRITES = {"int8": rewrite_for_onnxruntime, "int8-openvino": rewrite_for_openvino}


def build_int8_variants(
    raw: Path,
    work: Path,
    out: Path,
    opts: ExportOptions,
    facts: ModelFacts,
    props: dict[str, str],
    step: Callable[[str], None],
) -> tuple[dict[str, list[Path]], dict[str, dict[str, int]]]:
    """The files of each int8 variant asked for, and the graph rewrites applied to each."""
    import onnx

    tok = TextTokenizer(out / "tokenizer.json", max_length=facts.max_length, pad_id=facts.pad_token_id)
    s, recipe, variants = opts.settings, opts.int8_recipe, opts.variants
    rowwise = recipe in ROWWISE_SETTINGS
    cal = plans = None
    if rowwise or "int8-openvino" in variants:
        step(f"calibrating int8 on {s.sentences} RU/EN STS train sentences")
        cal = calibrate(raw, tok, s)
        step("planning int8 weights: SmoothQuant, " + ("GPTQ rounding" if s.gptq else "rounding to nearest"))
        plans = plan_weights(raw, cal, alpha=s.alpha, shift_floor=s.shift_floor)
    builds = {
        "int8": lambda dest: quantize_int8(
            raw,
            dest,
            recipe=recipe,
            tokenizer=tok,
            settings=s if rowwise else None,
            cal=cal if rowwise else None,
            plans=plans if rowwise else None,
        ),
        "int8-openvino": lambda dest: write_openvino_int8(raw, dest, plans or {}),
    }
    written, rewrites = {}, {}
    for v in (v for v in INT8_VARIANTS if v in variants):
        step(f"writing {v} (" + (f"recipe {recipe}" if v == "int8" else "row-wise weights for OpenVINO") + ")")
        built = builds[v](work / FILES[v])
        qm = onnx.load(str(built))
        built.unlink()  # in memory now: the disk holds each int8 file once (see diskspace.peak_bytes)
        rewrites[v] = REWRITES[v](qm.graph, pooling=facts.pooling)  # after calibration: same weights
        stamp(qm, props)
        # int8-openvino keeps its weights in a .data file beside the graph: OpenVINO maps that file instead of
        # reading it into memory (load peak ~360 MB instead of ~1070 MB on the full-size model), and processes
        # serving the same artifact share its pages
        written[v] = save_onnx(qm, out / FILES[v], external_data=v == "int8-openvino")
        del qm
    return written, rewrites
