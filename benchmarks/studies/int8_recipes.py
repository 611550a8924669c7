"""int8 candidates side by side: quality against fp32 and speed against torch fp32, in one run.

    python -m benchmarks.studies.int8_recipes CHECKPOINT [--out benchmarks/results/int8] [--rounds 7] [--quality-only]

For each recipe -- and, when openvino is installed, OpenVINO reading int8 weights and quantising activations
per 32- or 256-wide group at run time (the "optional engine" candidates), int8-openvino with static activation
scales on one group of MatMuls (QKV, FFN-up, ...), and, with nncf, OpenVINO's own static int8 (NNCF
post-training quantisation, the strongest peer) -- the int8 model is built from the same
unfused fp32 export, then
- quality: cosine min/mean vs the fp32 ONNX graph on 128 real RU/EN dev sentences (the parity texts) and
  the int8 gate's retrieval top-10 overlap on the STS dev split (``--gate-pairs`` per language);
- speed: onnxruntime sessions of every recipe and torch fp32 eager timed in alternating rounds
  (torch, A, B, ... torch, A, B, ...) at 1x16, 8x128 and 32x128 tokens; the ratio to torch is taken
  round by round and its median reported (these machines swing up to 2x between runs).
Writes ``int8_recipes.json`` and ``int8_recipes.md`` under ``--out``.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import tempfile
import time
from pathlib import Path

import numpy as np

from ..harness.machine import cpu_facts
from ..harness.results import save
from ..harness.runner import alternate, as_run, end_like_ctrl_c_on_sigterm, fixed_batch

SHAPES = ((1, 16), (8, 128), (32, 128))
RECIPES = ("ort-per-tensor", "ort-per-channel", "rowwise-sq-rtn", "rowwise-sq")
# OpenVINO candidates -> the group size (along the reduction axis) its CPU plugin quantises activations in at
# run time, with int8 weights per column; 0 for NNCF's static int8, which needs none
OPENVINO_DYNAMIC = {f"openvino w8 + dynamic a8 g{g}": g for g in (32, 256)}
OPENVINO_ROWWISE = "openvino w8 rowwise-sq (smoothing, GPTQ) + dynamic a8 g256"  # int8-openvino's weights
NNCF = "openvino nncf int8 (static)"
# int8-openvino with *static* per-tensor activation scales (calibration min/max) on one group of MatMuls and
# dynamic g256 on the rest: static scales are where NNCF's speed comes from; this measures what each group
# costs in quality and buys in speed
STATIC_GROUPS = ("qkv", "ffn-up", "qkv+ffn-up", "attn-out", "ffn-down", "qkv+ffn-up+attn-out+ffn-down")
OPENVINO_STATIC = {f"openvino rowwise-sq, static a8 on {g}": g for g in STATIC_GROUPS}
OPENVINO = {**OPENVINO_DYNAMIC, OPENVINO_ROWWISE: 256, **{name: 256 for name in OPENVINO_STATIC}, NNCF: 0}


@functools.lru_cache(maxsize=1)
def matmul_groups(raw: Path) -> dict[str, tuple[str, str]]:
    """Each constant-weight MatMul of ``raw`` -> (role, input tensor); roles: qkv (reads the same input as others),
    ffn-up (widens), ffn-down (narrows), attn-out (square, own input)."""
    import onnx

    from rosberta_export.rowwise import weight_matmuls

    g = onnx.load(str(raw), load_external_data=False).graph
    dims = {i.name: tuple(i.dims) for i in g.initializer}
    mms = weight_matmuls(g)
    readers: dict[str, int] = {}
    for n in mms:
        readers[n.input[0]] = readers.get(n.input[0], 0) + 1
    role = {}
    for n in mms:
        k, m = dims[n.input[1]]
        kind = "qkv" if readers[n.input[0]] > 1 else "ffn-up" if m > k else "ffn-down" if k > m else "attn-out"
        role[n.name] = (kind, n.input[0])
    return role


def _with_static(twin: Path, out: Path, raw: Path, cal, plans, group: str) -> Path:
    """``twin`` (int8-openvino's graph) with a calibrated per-tensor u8 QuantizeLinear/DequantizeLinear in front
    of every MatMul whose role is in ``group`` (``+``-joined); OpenVINO runs those as static int8."""
    import onnx
    from onnx import helper, numpy_helper

    roles, wanted = matmul_groups(raw), set(group.split("+"))
    model = onnx.load(str(twin))
    nodes, consts = [], []
    for node in model.graph.node:
        if node.op_type == "MatMul" and node.name in roles and roles[node.name][0] in wanted:
            lo, hi = cal.ranges[roles[node.name][1]]
            inv = plans[node.name].inv_smooth
            if inv is not None:  # the range of the smoothed input the MatMul reads
                lo, hi = np.minimum(lo * inv, hi * inv), np.maximum(lo * inv, hi * inv)
            lo_t, hi_t = min(float(lo.min()), 0.0), max(float(hi.max()), 0.0)
            scale = max(hi_t - lo_t, 1e-8) / 255.0
            p = f"static_{node.name.replace('/', '_')}"
            consts += [
                numpy_helper.from_array(np.array(scale, np.float32), p + "_s"),
                numpy_helper.from_array(np.array(int(np.clip(np.rint(-lo_t / scale), 0, 255)), np.uint8), p + "_z"),
            ]
            nodes += [
                helper.make_node("QuantizeLinear", [node.input[0], p + "_s", p + "_z"], [p + "_q"], name=p + "_Q"),
                helper.make_node("DequantizeLinear", [p + "_q", p + "_s", p + "_z"], [p + "_dq"], name=p + "_DQ"),
            ]
            node.input[0] = p + "_dq"
        nodes.append(node)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    model.graph.initializer.extend(consts)
    onnx.save_model(model, str(out), save_as_external_data=True, location=out.name + ".data")
    return out


def _nncf_int8(raw: Path, tok, out: Path) -> Path:
    """OpenVINO int8 as benchmarks.systems.nncf_int8 makes it for the peer in the main bench, saved as IR."""
    import openvino as ov

    from ..systems.nncf_int8 import nncf_quantize

    model = ov.Core().read_model(str(raw))  # the exporter's dynamic batch and sequence axes
    quantised, _ = nncf_quantize(model, lambda texts: tok.pad(tok.tokenize(texts).ids))
    ov.save_model(quantised, str(out))
    return out


def _session(path: Path, threads: int, name: str = ""):
    if name in OPENVINO:  # the runtime's own OpenVINO adapter, with this candidate's group size; f32 elsewhere for
        # every candidate, so they differ only in how they quantise (int8-openvino itself uses bf16 where native)
        from rosberta_onnx.openvino_engine import OpenVinoSession

        return OpenVinoSession(
            path,
            threads=threads,
            variant=name,
            options={"INFERENCE_PRECISION_HINT": "f32", "DYNAMIC_QUANTIZATION_GROUP_SIZE": OPENVINO[name]},
        )
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def _embed(sess, tok, texts, pooling) -> np.ndarray:
    from rosberta_onnx.pooling import l2_normalize, pool

    out = []
    for i in range(0, len(texts), 16):
        ids, mask = tok.pad(tok.tokenize(texts[i : i + 16]).ids)
        out.append(l2_normalize(pool(sess.run(None, {"input_ids": ids, "attention_mask": mask})[0], mask, pooling)))
    return np.concatenate(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--out", default="benchmarks/results/int8")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--gate-pairs", type=int, default=1500)
    ap.add_argument("--quality-only", action="store_true")
    ap.add_argument("--speed-only", action="store_true")
    a = ap.parse_args(argv)
    end_like_ctrl_c_on_sigterm()
    command = as_run(argv)  # as run, flags included

    # the built models (GBs at full size) go when the run ends, also when it fails or is interrupted
    with tempfile.TemporaryDirectory(prefix="int8-recipes-") as d:
        return _measure(a, command, Path(d))


def _measure(a, command: str, work: Path) -> int:
    """The measurement itself; ``work`` holds the models it builds and is removed afterwards by :func:`main`."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from rosberta_export.convert import export_fp32
    from rosberta_export.corpus import parity_texts
    from rosberta_export.gate import gate_figures
    from rosberta_export.openvino_int8 import write_openvino_int8
    from rosberta_export.quantize import ROWWISE_SETTINGS, calibrate, quantize_int8
    from rosberta_export.rowwise import plan_weights
    from rosberta_export.source import resolve_source
    from rosberta_onnx.tokenize import TextTokenizer

    src = resolve_source(a.checkpoint)
    pad = int(src.config.get("pad_token_id") or 0)
    AutoTokenizer.from_pretrained(str(src.folder)).backend_tokenizer.save(str(work / "tokenizer.json"))
    tok = TextTokenizer(work / "tokenizer.json", max_length=src.max_length, pad_id=pad)
    raw = export_fp32(src, work / "raw.onnx")
    files = {"fp32 (onnx, unfused)": raw}
    build_s = {}
    t = time.perf_counter()
    cal = calibrate(raw, tok, ROWWISE_SETTINGS["rowwise-sq"])  # shared by rowwise-sq and its OpenVINO twin
    cal_s = time.perf_counter() - t
    for r in RECIPES:
        t = time.perf_counter()
        files[r] = quantize_int8(
            raw, work / f"{r}.onnx", recipe=r, tokenizer=tok, cal=cal if r == "rowwise-sq" else None
        )
        build_s[r] = time.perf_counter() - t + (cal_s if r == "rowwise-sq" else 0.0)
    if importlib.util.find_spec("openvino") is not None:
        # nearest-rounded weights, no smoothing (what OpenVINO's own 8-bit weight compression does) ...
        dq = write_openvino_int8(raw, work / "openvino-w8.onnx", plan_weights(raw, None, alpha=0.0, shift_floor=0.0))
        files.update({name: dq for name in OPENVINO_DYNAMIC})
        # ... and the shipped int8-openvino variant: the row-wise recipe's weights, as the exporter writes it
        s = ROWWISE_SETTINGS["rowwise-sq"]
        plans = plan_weights(raw, cal, alpha=s.alpha, shift_floor=s.shift_floor)
        files[OPENVINO_ROWWISE] = twin = write_openvino_int8(raw, work / "openvino-w8-rowwise.onnx", plans)
        for name, group in OPENVINO_STATIC.items():
            files[name] = _with_static(twin, work / f"openvino-static-{group}.onnx", raw, cal, plans, group)
        if importlib.util.find_spec("nncf") is not None:
            t = time.perf_counter()
            files[NNCF] = _nncf_int8(raw, tok, work / "openvino-nncf-int8.xml")
            build_s[NNCF] = time.perf_counter() - t
    results: dict = {
        "checkpoint": str(src.folder),
        "stand_in": bool(src.stand_in),
        "threads": a.threads,
        "cpu": cpu_facts(),
        "recipes": {name: {"build_s": build_s.get(name)} for name in files},
    }

    if not a.speed_only:
        texts = parity_texts(128)
        sessions = {name: _session(p, a.threads, name) for name, p in files.items()}
        base = _embed(sessions["fp32 (onnx, unfused)"], tok, texts, src.pooling)
        from rosberta_export.measure import memo

        # every candidate is judged against the same fp32 vectors, computed once
        fp32_fn = memo(lambda t, task: _embed(sessions["fp32 (onnx, unfused)"], tok, t, src.pooling))
        for name, s in sessions.items():
            c = (_embed(s, tok, texts, src.pooling) * base).sum(1)
            q = {"cos_min": float(c.min()), "cos_mean": float(c.mean())}
            if name in (*RECIPES, *OPENVINO) and a.gate_pairs:
                fig = gate_figures(
                    fp32_fn,
                    lambda t, task, s=s: _embed(s, tok, t, src.pooling),
                    prompts={},
                    pairs_per_lang=a.gate_pairs,
                )
                q.update(
                    top10_overlap=fig["top10_overlap"],
                    spearman_delta={k: fig["spearman_int8"][k] - fig["spearman_fp32"][k] for k in fig["spearman_fp32"]},
                )
            results["recipes"][name]["quality"] = q
            print(name, q, flush=True)
        del sessions

    if not a.quality_only:
        torch.set_num_threads(a.threads)
        model = AutoModel.from_pretrained(str(src.folder), add_pooling_layer=False).eval()
        sessions = {name: _session(p, a.threads, name) for name, p in files.items()}
        speed = {}
        for b, n in SHAPES:
            feeds, run_torch = fixed_batch(model, b, n)
            systems = {"torch fp32": run_torch, **{k: (lambda s=s: s.run(None, feeds)) for k, s in sessions.items()}}
            for fn in systems.values():
                fn()  # warm-up
            times = alternate(systems, a.rounds)
            shape = f"{b}x{n}"
            for k in systems:
                ratio = float(np.median(np.array(times["torch fp32"]) / np.array(times[k])))
                speed.setdefault(k, {})[shape] = {"median_ms": 1e3 * float(np.median(times[k])), "x_torch": ratio}
            print(shape, {k: round(v[shape]["x_torch"], 2) for k, v in speed.items()}, flush=True)
        for k, v in speed.items():
            results["recipes"].setdefault(k, {})["speed"] = v

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    save(out / "int8_recipes.json", results)
    lines = [
        f"int8 recipes on `{src.folder.name}`"
        + (" (STAND-IN: random weights hide quantisation error)" if src.stand_in else "")
        + f", {a.threads} threads, on {results['cpu']['description']}. "
        f"Reproduce: `python -m benchmarks.studies.int8_recipes {command}`",
        "",
        "| recipe | cos min | cos mean | top-10 overlap en / ru | "
        + " | ".join(f"{b}x{n} (x torch fp32)" for b, n in SHAPES)
        + " |",
        "|---|---:|---:|---:|" + "---:|" * len(SHAPES),
    ]
    for name, r in results["recipes"].items():
        q, sp = r.get("quality", {}), r.get("speed", {})
        ov = q.get("top10_overlap")
        cells = [
            f"{q['cos_min']:.5f}" if q else "–",
            f"{q['cos_mean']:.5f}" if q else "–",
            f"{ov['en']:.3f} / {ov['ru']:.3f}" if ov else "–",
        ]
        cells += [
            f"{sp[f'{b}x{n}']['median_ms']:.1f} ms ({sp[f'{b}x{n}']['x_torch']:.2f}x)" if sp else "–" for b, n in SHAPES
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    save(out / "int8_recipes.md", "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
