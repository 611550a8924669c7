"""fp32 -> int8 for CPUs, by named recipe; the file a recipe writes records how it was made.

Recipes (measured side by side in benchmarks/int8_recipes.py):

- ``rowwise-sq`` (default): per-row (per-token) activation scales, SmoothQuant-style channel
  smoothing, a shifted unsigned range for GELU outputs and GPTQ (error-feedback) weight rounding,
  calibrated on the shipped RU/EN STS *train* sentences (the quality gate uses the *dev* split).
  See :mod:`.rowwise`.
- ``rowwise-sq-rtn``: the same with weights rounded to nearest and lighter smoothing (the first
  row-wise recipe; faster to build, fails the gate's RU retrieval criterion on MiniLM).
- ``ort-per-channel``: onnxruntime's ``quantize_dynamic``, S8 weights per output channel, one U8 scale
  per activation tensor. The common recipe of the peers.
- ``ort-per-tensor``: the same with one weight scale per tensor. Kept because it fails the gate on
  real weights: the test that the gate refuses a broken int8 uses it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .corpus import sts_pairs
from .rowwise import ROWWISE_RECIPE, Calibration, Plan, channel_stats, plan_weights, sensitivity, weight_matmuls
from .rowwise_graph import quantize_rowwise

__all__ = [
    "INT8_RECIPES",
    "DEFAULT_INT8_RECIPE",
    "ROWWISE_SETTINGS",
    "RowwiseSettings",
    "calibrate",
    "quantize_int8",
    "calibration_texts",
    "calibration_batches",
    "describe_rowwise",
]


@dataclass(frozen=True)
class RowwiseSettings:
    alpha: float  # SmoothQuant migration strength
    gptq: bool  # error-feedback weight rounding (rowwise.gptq_round) instead of round-to-nearest
    sentences: int  # calibration sentences (STS train, RU and EN interleaved)
    shift_floor: float = -0.2  # inputs never below this get the unsigned (shifted) range
    merge_shared: bool = False  # Q, K, V as one GEMM on one quantised input (rowwise.quantize_rowwise)


ROWWISE_SETTINGS = {
    # MiniLM, RU top-10 overlap with fp32 (STS dev, 1500 queries): 0.943 (rtn) -> 0.957 (this)
    "rowwise-sq": RowwiseSettings(alpha=0.65, gptq=True, sentences=1024),
    # the first row-wise recipe: a minute faster to build on the full-size model, fails the gate's RU criterion
    "rowwise-sq-rtn": RowwiseSettings(alpha=0.5, gptq=False, sentences=256),
}


def describe_rowwise(s: RowwiseSettings) -> str:
    return (
        f"{ROWWISE_RECIPE}; SmoothQuant alpha {s.alpha} and GELU-output shift calibrated on {s.sentences} RU/EN "
        f"STS train sentences, weights " + ("rounded with GPTQ error feedback" if s.gptq else "rounded to nearest")
    )


INT8_RECIPES = {
    **{name: describe_rowwise(s) for name, s in ROWWISE_SETTINGS.items()},
    "ort-per-channel": "onnxruntime quantize_dynamic: MatMul weights S8 per output channel, U8 activations per tensor (U8S8)",
    "ort-per-tensor": "onnxruntime quantize_dynamic: MatMul weights S8 per tensor, U8 activations per tensor (U8S8)",
}
DEFAULT_INT8_RECIPE = "rowwise-sq"
SENSITIVITY_ROWS = 1024  # calibration tokens kept per MatMul input to rank sensitivity


def calibration_texts(n: int) -> list[str]:
    """RU and EN sentences from the STS *train* split, interleaved (the gate measures on *dev*)."""
    en = [s for p in sts_pairs("en", "train") for s in (p.sentence1, p.sentence2)]
    ru = [s for p in sts_pairs("ru", "train") for s in (p.sentence1, p.sentence2)]
    step = max(1, len(en) // n)
    return [t for pair in zip(en[::step], ru[::step]) for t in pair][:n]


def calibration_batches(tokenizer, texts: list[str], batch_size: int) -> list[tuple]:
    """``texts`` as padded (ids, mask) batches of similar lengths: sorted by token count, cut into batches, the
    batches then in a fixed shuffled order (the first ones, where rows for the sensitivity ranking are kept, span every
    length). Batched in input order, a third of the forward's tokens on the STS sentences were padding; by length,
    about 2%. Padded rows are excluded from every statistic either way."""
    import random

    ids = tokenizer.tokenize(texts).ids
    order = sorted(range(len(ids)), key=lambda i: (len(ids[i]), i))
    batches = [tokenizer.pad([ids[i] for i in order[a : a + batch_size]]) for a in range(0, len(order), batch_size)]
    random.Random(0).shuffle(batches)
    return batches


def calibrate(
    raw: Path,
    tokenizer,
    settings: RowwiseSettings,
    *,
    batch_size: int = 16,
    keep_rows: int = 0,
    on_segment: Callable[[Calibration], None] | None = None,
) -> Calibration:
    """Run the row-wise recipe's calibration sentences through ``raw`` and record every MatMul input; with
    ``on_segment``, segment by segment (see :func:`.rowwise.channel_stats`)."""
    import onnx

    batches = calibration_batches(tokenizer, calibration_texts(settings.sentences), batch_size)
    graph = onnx.load(str(raw), load_external_data=False).graph
    inputs = sorted({n.input[0] for n in weight_matmuls(graph)})
    return channel_stats(raw, inputs, batches, keep_rows=keep_rows, grams=settings.gptq, on_segment=on_segment)


def quantize_int8(
    raw: Path,
    out: Path,
    *,
    recipe: str = DEFAULT_INT8_RECIPE,
    tokenizer=None,
    keep_fp32: int = 0,
    settings: RowwiseSettings | None = None,
    cal: Calibration | None = None,
    plans: dict[str, Plan] | None = None,
) -> Path:
    """Quantise the *unfused* fp32 graph ``raw``; onnxruntime fuses the int8 graph itself at load.

    ``tokenizer`` (a :class:`rosberta_onnx.tokenize.TextTokenizer`) is needed by calibrated recipes,
    unless ``cal`` (from :func:`calibrate` with the same settings) is given; ``plans`` (from
    :func:`.rowwise.plan_weights` with that calibration and settings) saves rounding the weights again.
    ``keep_fp32``: how many of the most sensitive MatMuls (by measured relative output error on the
    calibration text) stay in fp32 (row-wise recipes only). ``settings`` overrides a row-wise recipe's.
    """
    if recipe not in INT8_RECIPES:
        raise ValueError(f"unknown int8 recipe {recipe!r}; choose one of {sorted(INT8_RECIPES)}")
    if recipe in ROWWISE_SETTINGS:
        s = settings or ROWWISE_SETTINGS[recipe]
        if cal is None:
            if tokenizer is None:
                raise ValueError(f"the {recipe} recipe calibrates on text and needs a tokenizer")
            cal = calibrate(raw, tokenizer, s, keep_rows=SENSITIVITY_ROWS if keep_fp32 else 0)
        if keep_fp32 and not cal.samples:
            raise ValueError(
                f"keep_fp32={keep_fp32} ranks MatMuls on calibration rows, and the calibration given has "
                f"none: build it with calibrate(..., keep_rows={SENSITIVITY_ROWS})"
            )
        if plans is None:
            plans = plan_weights(raw, cal, alpha=s.alpha, shift_floor=s.shift_floor)
        skip: set[str] = set()
        if keep_fp32:
            sens = sensitivity(raw, cal, plans)
            skip = set(sorted(sens, key=lambda name: sens[name], reverse=True)[:keep_fp32])
        quantize_rowwise(
            raw,
            out,
            cal=cal,
            alpha=s.alpha,
            shift_floor=s.shift_floor,
            skip=skip,
            merge_shared=s.merge_shared,
            plans=plans,
        )
        return out

    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        model_input=str(raw),
        model_output=str(out),
        per_channel=recipe == "ort-per-channel",
        reduce_range=False,
        weight_type=QuantType.QInt8,
        op_types_to_quantize=["MatMul"],
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT, "MatMulConstBOnly": True},
    )
    return out
