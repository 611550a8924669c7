"""The quantised variants: calibrate on STS train sentences, plan the weights (SmoothQuant, GPTQ rounding: minutes
on the full-size model), then write ``int8`` for onnxruntime and ``int8-openvino`` for OpenVINO's CPU plugin from
the same plans (hence the same weights), ``int8-avx2`` as the int8 file with its weights stored unsigned
(:mod:`.unsigned_int8`), and ``int4`` (4-bit weights, :mod:`.int4`) from the same calibration. Each gets its graph
rewrites (:mod:`.rewrites`) and int8 embedding tables (:mod:`.embedding_int8`)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from rosberta_onnx.manifest import GATED_VARIANTS, ModelFacts
from rosberta_onnx.tokenize import TextTokenizer

from .convert import save_onnx, stamp
from .embedding_int8 import quantize_embedding_tables
from .int4 import INT4_SETTINGS, Blocks, plan_int4, write_int4
from .openvino_int8 import write_openvino_int8
from .options import ExportOptions
from .quantize import ROWWISE_SETTINGS, calibrate, quantize_int8
from .records import FILES
from .rewrites import rewrite_for_onnxruntime, rewrite_for_openvino
from .rowwise import Calibration, Plan, plan_weights
from .stages import Progress
from .unsigned_int8 import unsigned_weights

__all__ = ["build_quantized_variants", "REWRITES"]

# applied to each file once it is built (after calibration, so the weights are those calibrated on every token)
REWRITES = {"int8": rewrite_for_onnxruntime, "int8-openvino": rewrite_for_openvino, "int4": rewrite_for_onnxruntime}
# int8-avx2 is the int8 file with unsigned weights: int8's rewrites


def _loaded(path: Path):
    """The model at ``path``, in memory, and the file gone: the disk holds each quantised file once (see
    :func:`.diskspace.peak_bytes`)."""
    import onnx

    model = onnx.load(str(path))
    path.unlink()
    return model


def build_quantized_variants(
    raw: Path,
    work: Path,
    out: Path,
    opts: ExportOptions,
    facts: ModelFacts,
    props: dict[str, str],
    step: Progress,
) -> tuple[dict[str, list[Path]], dict[str, dict[str, int]]]:
    """The files of each quantised variant asked for, and the graph rewrites applied to each."""
    tok = TextTokenizer(out / "tokenizer.json", max_length=facts.max_length, pad_id=facts.pad_token_id)
    s, recipe, variants = opts.settings, opts.int8_recipe, opts.variants
    rowwise = recipe in ROWWISE_SETTINGS
    cal = None
    plans: dict[str, Plan] | None = None
    blocks: dict[str, Blocks] | None = None
    int8_plans = (rowwise and ("int8" in variants or "int8-avx2" in variants)) or "int8-openvino" in variants
    how = "GPTQ rounding" if s.gptq else "rounding to nearest"
    if opts.calibrates:
        # int4 rounds with GPTQ whatever the int8 recipe, so it needs X^T X of the inputs (the int8 plans use them
        # only when their recipe says so)
        grams = s.gptq or ("int4" in variants and INT4_SETTINGS.gptq)
        plans = {} if int8_plans else None
        blocks = {} if "int4" in variants else None

        def plan_segment(part: Calibration) -> None:
            """Plan the weights of the MatMuls this calibration segment measured, then its X^T X can go."""
            if plans is not None:
                plans.update(
                    plan_weights(raw, part, alpha=s.alpha, shift_floor=s.shift_floor, gptq=s.gptq, inputs=part.ranges)
                )
            if blocks is not None:
                blocks.update(plan_int4(raw, part, INT4_SETTINGS, inputs=part.ranges))

        step.stage(
            "calibration and weight planning, segment by segment",
            f"calibrating on {s.sentences} RU/EN STS train sentences, planning "
            + " and ".join(
                w
                for w, on in ((f"int8 weights (SmoothQuant, {how})", int8_plans), ("int4 weights", blocks is not None))
                if on
            )
            + " as each segment of the graph completes",
        )
        cal = calibrate(raw, tok, dataclasses.replace(s, gptq=grams), on_segment=plan_segment)
        step(
            f"  calibrated {cal.segments} graph segments one at a time"
            if cal.segments
            else "  calibrated the whole graph at once (no LayerNorm cuts: every X^T X held until the end)"
        )
    builds = {
        "int8": lambda: _loaded(
            quantize_int8(
                raw,
                work / FILES["int8"],
                recipe=recipe,
                tokenizer=tok,
                settings=s if rowwise else None,
                cal=cal if rowwise else None,
                plans=plans if rowwise else None,
            )
        ),
        "int8-openvino": lambda: _loaded(write_openvino_int8(raw, work / FILES["int8-openvino"], plans or {})),
        "int4": lambda: write_int4(raw, blocks or {}, INT4_SETTINGS),
    }
    words = {
        "int8": f"recipe {recipe}",
        "int8-avx2": "the int8 weights stored unsigned",
        "int8-openvino": "row-wise weights for OpenVINO",
        "int4": "4-bit weights",
    }
    written: dict[str, list[Path]] = {}
    rewrites: dict[str, dict[str, int]] = {}
    for v in (v for v in GATED_VARIANTS if v in variants):
        step.stage(f"write {v}", f"writing {v} ({words[v]})")
        if v == "int8-avx2" and "int8" in written:  # the int8 file as written: same rewrites, same tables
            import onnx

            qm = onnx.load(str(written["int8"][0]))
            rewrites[v] = dict(rewrites["int8"])
        else:
            base = "int8" if v == "int8-avx2" else v
            qm = builds[base]()
            rewrites[v] = REWRITES[base](qm.graph, pooling=facts.pooling)  # after calibration: same weights
            rewrites[v]["int8_embeddings"] = quantize_embedding_tables(qm.graph)
            stamp(qm, props)
        if v == "int8-avx2" and not unsigned_weights(qm.graph):
            raise ValueError("int8-avx2: the int8 graph has no S8 GEMM weights to store unsigned")
        # Weights in a .data file beside the graph: the engines map that file instead of reading a copy into
        # memory. OpenVINO: load peak ~360 MB instead of ~1070 MB on the full-size model; onnxruntime's int8: peak
        # after an 8×128 call 425 MB instead of 662 MB with the weights inside the .onnx (same speed, measured
        # alternating). See docs/edge.md.
        written[v] = save_onnx(qm, out / FILES[v], external_data=True)
        del qm
    return written, rewrites
