"""How much faster than torch fp32 can int8 be on this CPU? The model's weight GEMMs alone, through every int8
kernel we can use, timed against the whole torch fp32 model in one process, alternating round by round.

    python -m benchmarks.studies.ceiling CHECKPOINT [--shapes 1x16,8x128,32x128] [--rounds 7] [--threads 2]

The weight MatMuls (per layer Q, K, V and attention output, hidden x hidden; FFN up and down) hold ~98% of the
model's multiply-adds at 128 tokens and are all that int8 speeds up: attention scores, softmax, GELU and
LayerNorm stay float in every engine. So each engine runs a *GEMM-only model*: the same MatMul shapes, layer after layer, one call,
nothing else (random weights scaled to keep activations in range; GEMM speed does not depend on the values).
Its time against torch fp32's whole model is a **ceiling**: the speed-up that engine would reach if every other
op of the model were free. The int8 kernels:

- onnxruntime ``DynamicQuantizeMatMul`` (MLAS U8 x S8, one activation scale per tensor computed at run time):
  the GEMM behind the ``int8`` variant's ``MatMulIntegerToFloat``;
- OpenVINO with run-time activation quantisation per 256 values: ``int8-openvino``'s kernel;
- OpenVINO static int8 (one fixed activation scale per tensor): what NNCF's int8 runs;
- the per-256 kernel through the runtime's own ``OpenVinoSession`` with the server's batch streams (a batch of
  2+ rows split in halves run at once on single-thread streams; one row runs as above).

Both OpenVINO kernels run with the precision hint the exporter gates ``int8-openvino`` with on this CPU (bf16
where it has native bf16); it only touches the few float ops around each GEMM. torch fp32's own weight GEMMs are
timed the same way (``F.linear`` in a loop), which says how much of its time the ceiling is about.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

import numpy as np

from ..harness.kernels import ORT_INT8, OV_DYNAMIC, OV_STATIC, OV_STREAMS
from ..harness.machine import cpu_facts
from ..harness.results import save
from ..harness.runner import alternate, as_run, end_like_ctrl_c_on_sigterm, fixed_batch

TORCH_MODEL = "torch fp32, whole model (the reference)"
TORCH_GEMMS = "torch fp32, weight GEMMs only (F.linear)"
INT8 = (ORT_INT8, OV_DYNAMIC, OV_STATIC, OV_STREAMS)
# int8 rounding compounds along the chain (full size, 144 MatMuls: cosine 0.98-0.99 against torch); a graph
# that computed something else would be near 0
MIN_AGREEMENT = 0.95


def _layer_dims(hidden: int, inter: int) -> list[tuple[int, int]]:
    """(k, n) of one encoder layer's weight MatMuls, in an order that chains: Q, K, V, out, FFN up, FFN down."""
    return [(hidden, hidden)] * 4 + [(hidden, inter), (inter, hidden)]


def _weights(dims: list[tuple[int, int]], rng) -> list[np.ndarray]:
    return [(rng.standard_normal((k, n)) / np.sqrt(k)).astype(np.float32) for k, n in dims]


def _chain_model(path: Path, weights: list[np.ndarray], kind: str) -> Path:
    """``x -> MatMul -> MatMul -> ...`` as ONNX (weights in a side file): fp32 weights (``fp32``), int8 per
    column behind DequantizeLinear (``dq``), or that with a fixed-scale u8 Quantize/DequantizeLinear in front of
    every MatMul (``static``)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from rosberta_export.rowwise import plan_matmul

    inits, nodes, x = [], [], "x"
    if kind == "static":
        inits += [
            numpy_helper.from_array(np.array(8.0 / 255, np.float32), "xs"),
            numpy_helper.from_array(np.array(128, np.uint8), "xz"),
        ]
    for i, w in enumerate(weights):
        if kind == "static":
            nodes += [
                helper.make_node("QuantizeLinear", [x, "xs", "xz"], [f"q{i}"]),
                helper.make_node("DequantizeLinear", [f"q{i}", "xs", "xz"], [f"d{i}"]),
            ]
            x = f"d{i}"
        if kind == "fp32":
            inits.append(numpy_helper.from_array(w, f"w{i}"))
            wname = f"w{i}"
        else:
            plan = plan_matmul(w, None, alpha=0.0, shift_floor=0.0)  # S8 per column, rounded to nearest
            inits += [numpy_helper.from_array(plan.wq, f"wq{i}"), numpy_helper.from_array(plan.col, f"ws{i}")]
            nodes.append(helper.make_node("DequantizeLinear", [f"wq{i}", f"ws{i}"], [f"wd{i}"], axis=1))
            wname = f"wd{i}"
        nodes.append(helper.make_node("MatMul", [x, wname], [f"y{i}"]))
        x = f"y{i}"
    k, n = weights[0].shape[0], weights[-1].shape[1]
    graph = helper.make_graph(
        nodes,
        "gemms",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, None, k])],
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, [None, None, n])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save_model(model, str(path), save_as_external_data=True, location=path.name + ".data")
    return path


def _engines(weights: list[np.ndarray], work: Path, threads: int) -> dict[str, object]:
    """name -> run(x) of the GEMM-only model, for torch's loop and each int8 kernel."""
    import onnxruntime as ort
    import openvino as ov
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from rosberta_export.openvino_int8 import openvino_options
    from rosberta_onnx.openvino_engine import OpenVinoSession

    fp32 = _chain_model(work / "fp32.onnx", weights, "fp32")
    ort_int8 = work / "ort-int8.onnx"
    logging.getLogger().setLevel(logging.ERROR)  # quantize_dynamic's "consider pre-processing" advice
    quantize_dynamic(
        str(fp32), str(ort_int8), weight_type=QuantType.QInt8, per_channel=True, use_external_data_format=True
    )
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    # spinning threads would keep busy-waiting after each run and slow whichever system runs next
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    sess = ort.InferenceSession(str(ort_int8), so, providers=["CPUExecutionProvider"])
    core = ov.Core()
    opts = {
        "INFERENCE_NUM_THREADS": threads,
        "INFERENCE_PRECISION_HINT": openvino_options()["INFERENCE_PRECISION_HINT"],
    }
    dyn = core.compile_model(
        str(_chain_model(work / "dq.onnx", weights, "dq")), "CPU", {**opts, "DYNAMIC_QUANTIZATION_GROUP_SIZE": 256}
    ).create_infer_request()
    static = core.compile_model(
        str(_chain_model(work / "static.onnx", weights, "static")), "CPU", opts
    ).create_infer_request()
    split = OpenVinoSession(
        work / "dq.onnx",
        threads=threads,
        variant="ceiling",
        streams=min(2, threads),  # the batch streams rosberta-onnx serve runs
        options={"INFERENCE_PRECISION_HINT": opts["INFERENCE_PRECISION_HINT"], "DYNAMIC_QUANTIZATION_GROUP_SIZE": 256},
    )
    wts = [torch.from_numpy(np.ascontiguousarray(w.T)) for w in weights]  # nn.Linear's layout

    def torch_gemms(x):
        with torch.inference_mode():
            y = torch.from_numpy(x)
            for w in wts:
                y = torch.nn.functional.linear(y, w)
        return y.numpy()

    return {
        TORCH_GEMMS: torch_gemms,
        ORT_INT8: lambda x: sess.run(None, {"x": x})[0],
        OV_DYNAMIC: lambda x: dyn.infer({"x": x})[0],
        OV_STATIC: lambda x: static.infer({"x": x})[0],
        OV_STREAMS: lambda x: split.run(None, {"x": x})[0],
    }


def _agreement(outputs: dict[str, np.ndarray]) -> dict[str, float]:
    """Cosine (over the flattened output) of each engine's GEMM-only model against torch's: a check that every
    engine computes the same chain, so that the timings compare the same work."""
    ref = outputs[TORCH_GEMMS].ravel().astype(np.float64)
    return {
        name: float(ref @ y.ravel() / (np.linalg.norm(ref) * np.linalg.norm(y.ravel()) + 1e-30))
        for name, y in outputs.items()
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--shapes", default="1x16,8x128,32x128", help="batch x tokens, comma-separated")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="benchmarks/results/ceiling")
    a = ap.parse_args(argv)
    end_like_ctrl_c_on_sigterm()
    try:
        shapes = [tuple(int(v) for v in s.lower().split("x")) for s in a.shapes.split(",")]
    except ValueError:
        shapes = []
    if not shapes or any(len(sh) != 2 or min(sh) < 1 for sh in shapes):
        ap.error(f"--shapes {a.shapes!r}: expected batch x tokens pairs of positive numbers, such as 1x16,8x128")
    if a.rounds < 1:
        ap.error(f"--rounds {a.rounds}: needs at least 1 timed round")

    # the built models (GBs at full size) go when the run ends, also when it fails or is interrupted
    with tempfile.TemporaryDirectory(prefix="ceiling-") as d:
        return _measure(a, shapes, Path(d), as_run(argv))


def _measure(a, shapes: list[tuple[int, int]], work: Path, command: str) -> int:
    """The measurement itself; ``work`` holds the models it builds and is removed afterwards by :func:`main`."""
    import torch
    from transformers import AutoModel

    from rosberta_export.source import resolve_source

    torch.set_num_threads(a.threads)
    src = resolve_source(a.checkpoint)
    hidden, inter, layers = (int(src.config[k]) for k in ("hidden_size", "intermediate_size", "num_hidden_layers"))
    dims = _layer_dims(hidden, inter) * layers
    model = AutoModel.from_pretrained(str(src.folder), add_pooling_layer=False).eval()
    rng = np.random.default_rng(0)
    engines = _engines(_weights(dims, rng), work, a.threads)

    cpu = cpu_facts()
    results = {
        "checkpoint": str(src.folder),
        "stand_in": bool(src.stand_in),
        "threads": a.threads,
        "cpu": cpu,
        "rounds": a.rounds,
        "weight_matmuls": len(dims),
        "shapes": {},
    }
    lines = [
        f"GEMM-only ceiling on `{src.folder.name}` ({layers} layers, {len(dims)} weight MatMuls), {a.threads} "
        f"threads, {a.rounds} alternating rounds, on {cpu['description']}. "
        f"Reproduce: `python -m benchmarks.studies.ceiling {command}`",
        "",
        "| shape | system | median ms | GMAC/s | x torch fp32 whole model |",
        "|---|---|---:|---:|---:|",
    ]
    for b, n in shapes:
        _, whole_model = fixed_batch(model, b, n)
        x = rng.standard_normal((b, n, hidden)).astype(np.float32)
        systems = {TORCH_MODEL: whole_model, **{name: (lambda fn=fn: fn(x)) for name, fn in engines.items()}}
        whole_model()  # warm-up; the engines' first-shape compilation and paging happen in the check below
        agree = _agreement({name: fn(x) for name, fn in engines.items()})
        if min(agree.values()) < MIN_AGREEMENT:
            raise SystemExit(
                f"the GEMM-only models disagree at {b}x{n} (cosine against torch's: {agree}); a kernel "
                f"that computes something else would be timed on different work. Not reporting."
            )
        t = alternate(systems, a.rounds)
        ref = np.array(t[TORCH_MODEL])
        macs = b * n * sum(k * m for k, m in dims)
        rows = {
            name: {
                "median_ms": 1e3 * float(np.median(v)),
                "gmacs": macs / float(np.median(v)) / 1e9,
                "x_torch_model": float(np.median(ref / np.array(v))),
            }
            for name, v in t.items()
        }
        results["shapes"][f"{b}x{n}"] = {"systems": rows, "cosine_vs_torch_gemms": agree}
        for name, r in rows.items():
            lines.append(f"| {b}x{n} | {name} | {r['median_ms']:.1f} | {r['gmacs']:.0f} | {r['x_torch_model']:.2f} |")
        print("\n".join(lines[-len(rows) :]), flush=True)
    lines += [
        "",
        "GMAC/s counts the weight MatMuls' multiply-adds only (also for the whole model's row). An int8 row's "
        "ratio is the ceiling for that kernel: the model's speed-up if everything but its weight GEMMs were free.",
    ]
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    save(out / "ceiling.json", results)
    save(out / "ceiling.md", "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
